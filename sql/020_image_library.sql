-- Images: one stored copy per user and content (the SHA-256 of the uploaded
-- bytes). A second upload of the same bytes finds the first through this index,
-- and two at once cannot both insert. Duplicates uploaded before this migration
-- stay (their objects are the user's), but only the oldest of each takes part.
ALTER TABLE videos ADD COLUMN sha256_unique boolean NOT NULL DEFAULT true;
UPDATE videos v SET sha256_unique = false
WHERE v.kind = 'image' AND EXISTS (
    SELECT 1 FROM videos o
    WHERE o.user_id = v.user_id AND o.kind = 'image' AND o.sha256 = v.sha256
      AND (o.created_at, o.id) < (v.created_at, v.id)
);
CREATE UNIQUE INDEX videos_user_image_sha256_key ON videos (user_id, sha256)
    WHERE kind = 'image' AND sha256_unique;

-- A finished resumable upload of an image already in the library names that
-- image, which an earlier upload may name too.
ALTER TABLE tus_uploads DROP CONSTRAINT tus_uploads_video_id_key;
CREATE INDEX tus_uploads_video_idx ON tus_uploads (video_id);
