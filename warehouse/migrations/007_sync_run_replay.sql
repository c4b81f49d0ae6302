-- A replayed landing is merged under its own run id ('<sync id>+replay<n>') and names the
-- landing it replays, so the original run's audit rows are never overwritten.
ALTER TABLE ops.sync_run ADD COLUMN IF NOT EXISTS replay_of VARCHAR;
COMMENT ON COLUMN ops.sync_run.replay_of IS 'replay_of — 重放来源: sync id of the landing this run replayed (NULL for an ordinary sync)';
