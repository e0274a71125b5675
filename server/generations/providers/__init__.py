"""Video generation providers: one module each behind `base.RemoteProvider`
(Sora, Veo, Kling), and `local` (ffmpeg, always available)."""
