-- Sliding sync: the timeline limit each room was last sent with, so a larger one is answered
-- with more history (`expanded_timeline`). NULL in rows written before: such rooms are never
-- told expanded (their configuration digest differs anyway, so their state is sent again).
ALTER TABLE sliding_connection_rooms ADD COLUMN timeline_limit INTEGER;
