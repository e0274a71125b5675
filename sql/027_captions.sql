-- Captions: one WebVTT text per video and language (POST /api/v1/videos/{id}/captions).
-- Stored as converted and sanitised WebVTT (SRT comes in, WebVTT goes out); small
-- (FRAMEFLOW_CAPTION_MAX_BYTES), so kept in the row, gone with the video.

CREATE TABLE captions (
    video_id    uuid NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    language    text NOT NULL,
    label       text NOT NULL,
    vtt         text NOT NULL,
    source_format text NOT NULL,  -- 'vtt' or 'srt': what was uploaded
    cue_count   integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (video_id, language)
);
