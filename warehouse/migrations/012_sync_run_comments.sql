-- 012_sync_run_comments: ops.sync_run's comments say what its rows hold. 001 called
-- sync_run_id the orchestrator's run id, but a merged or refused sync's rows carry its landing's
-- sync id (<sync id>+replay<n> for a replay: pipelines/sync.py, _run_id); only a failure queued
-- for the whole run (entity '*', warehouse/run_log.py) carries the Dagster run id. 001 listed a
-- status 'running' that nothing writes, and its mode 'incremental' hid that 商州's platform
-- (battle v2) cannot filter by time (pipelines/modes.py). (Applied migrations are never edited:
-- this one re-comments.)

COMMENT ON COLUMN ops.sync_run.sync_run_id IS 'sync_run_id — 同步批次: id of the sync: its landing''s sync id (a UTC time and a random suffix, e.g. 20261201T063033.224709Z-8e8ed4), with +replay1, +replay2 … appended for a replay (hub replay); for a failure of a whole run (entity ''*'') the Dagster run id, or the landing''s sync id when its merge could not get the warehouse lock';
COMMENT ON COLUMN ops.sync_run.mode IS 'mode — 同步方式: full / incremental; on a platform that cannot filter by time (商州''s battle v2) incremental is a full re-read with only the changes applied';
COMMENT ON COLUMN ops.sync_run.status IS 'status — 状态: succeeded / failed / refused (reject rate above the county''s threshold); a sync''s rows are written when it ends, so no row says it is running';
