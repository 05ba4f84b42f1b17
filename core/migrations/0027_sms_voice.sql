-- SMS and voice calls (docs/notifications.md): a person's phone number as a channel of kind
-- 'sms' or 'voice'; each firm's account with its SMS and voice provider (the access key secret
-- encrypted with SHOUWANG_NOTIFY_PHONE_KEY, never readable in clear from the database); the
-- provider's request id and status in the delivery logs; and the voice call a P0 alarm gets when
-- nobody acknowledged it in time (one per alarm).

ALTER TABLE contact_channels DROP CONSTRAINT contact_channels_kind_check;
ALTER TABLE contact_channels ADD CONSTRAINT contact_channels_kind_check
    CHECK (kind IN ('webhook', 'wecom', 'dingtalk', 'email', 'mqtt', 'sms', 'voice'));

-- One account per firm and channel kind. provider: 'aliyun' (SMS: Dysmsapi SendSms; voice:
-- Dyvmsapi SingleCallByTts) or 'tencent' (SMS only: SendSms 2021-01-11, app_id the SmsSdkAppId).
CREATE TABLE phone_accounts (
    firm_id             int NOT NULL REFERENCES firms (id),
    kind                text NOT NULL CHECK (kind IN ('sms', 'voice')),
    provider            text NOT NULL CHECK (provider IN ('aliyun', 'tencent')),
    access_key_id       text NOT NULL CHECK (length(access_key_id) BETWEEN 1 AND 128),
    access_key_secret   text NOT NULL,          -- a Fernet token, never the secret itself
    sign_name           text NOT NULL DEFAULT '' CHECK (length(sign_name) <= 64),
    template_code       text NOT NULL CHECK (length(template_code) BETWEEN 1 AND 64),
    app_id              text NOT NULL DEFAULT '' CHECK (length(app_id) <= 64),
    region              text NOT NULL DEFAULT 'ap-guangzhou' CHECK (length(region) <= 32),
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (firm_id, kind),
    CHECK (NOT (kind = 'voice' AND provider = 'tencent')),
    CHECK (provider <> 'tencent' OR app_id <> '')
);
SELECT audit_attach('phone_accounts', 'firm_id,kind', false);
REVOKE SELECT ON phone_accounts FROM shouwang_analytics;

ALTER TABLE deliveries ADD COLUMN provider_request_id text;
ALTER TABLE deliveries ADD COLUMN provider_status text;
ALTER TABLE platform_deliveries ADD COLUMN provider_request_id text;
ALTER TABLE platform_deliveries ADD COLUMN provider_status text;

ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('alarm_opened', 'alarm_cleared', 'alarm_raised', 'escalation', 'reminder',
        'voice_call'));
CREATE UNIQUE INDEX outbox_one_voice_call ON outbox (alarm_id) WHERE kind = 'voice_call';
