-- The profile that created this warehouse (pipelines/settings.py): 'production' or 'demo'.
-- pipelines.warehouse.connect records it on the first read-write open and refuses the other
-- profile afterwards, so simulated people never mix with a real county's.
CREATE TABLE ops.hub_profile (
    profile VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ
);
COMMENT ON TABLE ops.hub_profile IS '数据环境: the profile that created this warehouse: production (real counties only) or demo (simulated counties)';
COMMENT ON COLUMN ops.hub_profile.profile IS 'profile — 环境: production or demo';
COMMENT ON COLUMN ops.hub_profile.recorded_at IS 'recorded_at — 记录时间: when the warehouse was first written';
