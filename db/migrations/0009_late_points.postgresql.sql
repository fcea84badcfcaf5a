-- Plain PostgreSQL has had rollup_state and rollup_invalidations since 0002_points: nothing to do.
SELECT 1;
