-- mart.sync_status: per county of the registry (seeds/counties.csv), is its data fresh?
-- "Latest sync" is the county's most recent merged or refused sync (by finish time); its counts
-- add up its entities. age_hours is measured when the marts were built (built_at); compute
-- now() - last_success_at for the age at query time.
-- connection: whether the county is configured (its own platform), simulated (demo) or not
-- configured (production without settings), as the process that built the marts sees it.

CREATE OR REPLACE TABLE mart.sync_status AS
WITH registry AS (
    SELECT code AS county_code, name AS county_name, slug, kind, reject_threshold::DOUBLE AS reject_threshold
    FROM seed_csv(getvariable('hub_registry'))
),
runs AS (
    SELECT sync_run_id, county_code, any_value(mode) AS mode, any_value(status) AS status,
           max(finished_at) AS finished_at,
           sum(fetched) AS fetched, sum(accepted) AS accepted, sum(rejected) AS rejected,
           sum(findings) AS findings, sum(deleted) AS deleted, any_value(error) AS error
    FROM ops.sync_run WHERE entity <> '*'
    GROUP BY sync_run_id, county_code
),
latest AS (
    SELECT * FROM runs WHERE status IN ('succeeded', 'refused')
    QUALIFY row_number() OVER (PARTITION BY county_code ORDER BY finished_at DESC, sync_run_id DESC) = 1
),
success AS (
    SELECT county_code, max(finished_at) AS last_success_at
    FROM runs WHERE status = 'succeeded' GROUP BY county_code
),
failure AS (
    SELECT county_code, finished_at AS last_failure_at, error AS last_failure_error
    FROM ops.sync_run WHERE status = 'failed'
    QUALIFY row_number() OVER (PARTITION BY county_code ORDER BY finished_at DESC) = 1
),
conflicts AS (
    SELECT county_code, count(DISTINCT conflict_id) AS open_conflicts
    FROM (SELECT conflict_id, county_code_a AS county_code FROM ops.conflict WHERE resolved_at IS NULL
          UNION ALL
          SELECT conflict_id, county_code_b FROM ops.conflict WHERE resolved_at IS NULL)
    GROUP BY county_code
),
live AS (
    SELECT county_code, count(*) AS live_households
    FROM core.household WHERE deleted_at IS NULL GROUP BY county_code
),
-- A sync interrupted between its COMMIT and the end of the touch (warehouse/touch.py) left
-- unchanged rows whose last_synced_at still names an earlier sync: counted, never hidden.
touch AS (
    SELECT p.county_code, count(*) AS touch_pending_rows
    FROM ops.touch_pending_key AS k JOIN ops.touch_pending AS p USING (sync_run_id, entity)
    GROUP BY p.county_code
)
SELECT r.county_code, r.county_name, r.slug, r.kind,
       coalesce(getvariable('hub_connections')[r.slug], 'unknown') AS connection,
       s.last_success_at,
       round(date_diff('second', s.last_success_at, now()) / 3600.0, 2) AS age_hours,
       l.sync_run_id AS latest_sync_run_id, l.mode AS latest_mode, l.status AS latest_status,
       l.finished_at AS latest_finished_at,
       l.fetched, l.accepted, l.rejected, l.findings, l.deleted,
       round(l.rejected / nullif(l.accepted + l.rejected, 0), 4) AS reject_rate,
       r.reject_threshold,
       coalesce(c.open_conflicts, 0) AS open_conflicts,
       f.last_failure_at, f.last_failure_error,
       coalesce(h.live_households, 0) AS live_households,
       coalesce(t.touch_pending_rows, 0) AS touch_pending_rows,
       now() AS built_at
FROM registry AS r
LEFT JOIN success AS s USING (county_code)
LEFT JOIN latest AS l USING (county_code)
LEFT JOIN failure AS f USING (county_code)
LEFT JOIN conflicts AS c USING (county_code)
LEFT JOIN live AS h USING (county_code)
LEFT JOIN touch AS t USING (county_code)
ORDER BY r.county_code;

COMMENT ON TABLE mart.sync_status IS '同步状态: per county of the registry: last successful sync and its age, the latest sync''s counts and reject rate, open conflicts, last failure';
COMMENT ON COLUMN mart.sync_status.county_name IS 'county_name — 县区名称: name in the registry';
COMMENT ON COLUMN mart.sync_status.slug IS 'slug — 县区标识: registry slug (Dagster group, env-var infix)';
COMMENT ON COLUMN mart.sync_status.kind IS 'kind — 平台类型: bigdata / battle / workbook';
COMMENT ON COLUMN mart.sync_status.connection IS 'connection — 接入状态: configured (HUB_<SLUG>_URL set: the county''s own platform), simulated (demo profile: the bundled simulator) or not configured (production profile without settings: never synced, never simulated)';
COMMENT ON COLUMN mart.sync_status.last_success_at IS 'last_success_at — 最近成功同步: when the latest succeeded sync committed';
COMMENT ON COLUMN mart.sync_status.age_hours IS 'age_hours — 数据时效(小时): hours from last_success_at to built_at';
COMMENT ON COLUMN mart.sync_status.latest_sync_run_id IS 'latest_sync_run_id — 最近同步批次: the latest merged or refused sync';
COMMENT ON COLUMN mart.sync_status.latest_mode IS 'latest_mode — 最近同步方式: full / incremental; on a platform that cannot filter by time (商州''s battle v2) incremental is a full re-read with only the changes applied';
COMMENT ON COLUMN mart.sync_status.latest_status IS 'latest_status — 最近同步状态: succeeded / refused';
COMMENT ON COLUMN mart.sync_status.latest_finished_at IS 'latest_finished_at — 最近同步结束: when it finished';
COMMENT ON COLUMN mart.sync_status.fetched IS 'fetched — 获取条数: rows the latest sync fetched, all entities';
COMMENT ON COLUMN mart.sync_status.accepted IS 'accepted — 接收条数: rows that passed validation in the latest sync';
COMMENT ON COLUMN mart.sync_status.rejected IS 'rejected — 拒收条数: records rejected in the latest sync';
COMMENT ON COLUMN mart.sync_status.findings IS 'findings — 警告条数: warnings recorded in the latest sync';
COMMENT ON COLUMN mart.sync_status.deleted IS 'deleted — 删除条数: rows soft-deleted by the latest sync';
COMMENT ON COLUMN mart.sync_status.reject_rate IS 'reject_rate — 拒收率: rejected / (accepted + rejected) of the latest sync';
COMMENT ON COLUMN mart.sync_status.reject_threshold IS 'reject_threshold — 拒收阈值: the county''s threshold above which a sync is refused';
COMMENT ON COLUMN mart.sync_status.open_conflicts IS 'open_conflicts — 未解决冲突: open ops.conflict rows involving the county';
COMMENT ON COLUMN mart.sync_status.last_failure_at IS 'last_failure_at — 最近失败时间: when the latest failed run was recorded';
COMMENT ON COLUMN mart.sync_status.last_failure_error IS 'last_failure_error — 最近失败原因: its error, credentials removed';
COMMENT ON COLUMN mart.sync_status.live_households IS 'live_households — 在册贫困户: live households the warehouse holds for the county';
COMMENT ON COLUMN mart.sync_status.touch_pending_rows IS 'touch_pending_rows — 待标记同步行数: unchanged rows whose last_synced_at/sync_run_id still wait for the touch of a sync stopped after its commit (ops.touch_pending); 0 normally; the county''s next sync finishes them';
COMMENT ON COLUMN mart.sync_status.built_at IS 'built_at — 生成时间: when the marts were built';
