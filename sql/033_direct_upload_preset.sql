-- A direct upload may name one of its creator's presets (`preset` at creation,
-- checked then): its jobs are queued when the file arrives, as `?preset=` does
-- for the creator's own uploads. Kept by name and read again at completion,
-- like a tus upload's; NULL: none.
ALTER TABLE direct_uploads ADD COLUMN preset text;
