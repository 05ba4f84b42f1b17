-- Analytics: the learned multivariate detectors, one row per trained version.
-- At most one version per device class is active; the running analytics picks up a newly
-- activated version by polling, without a restart.

CREATE TABLE detector_models (
    id              bigserial PRIMARY KEY,
    device_class    text NOT NULL REFERENCES device_classes (name),
    version         text NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    features        text[] NOT NULL,
    threshold       double precision NOT NULL,
    blob            bytea NOT NULL,               -- analytics.multivariate.Model.to_bytes (npz)
    active          boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX detector_models_one_active ON detector_models (device_class) WHERE active;
