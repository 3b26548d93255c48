"""The DuckDB schema, as a list of migrations applied in order.

``schema_version`` holds the number of migrations a file has had; opening an
older file applies the rest in one transaction, so a file is never left between
versions. Append a migration to change the schema; never edit a shipped one.
"""

from kb.config import ROLES
from kb.db.answers import answered_sql

TIERS = ("enterprise", "custom", "free")
CATEGORIES = ("platform_issue", "api_help", "general_coding")
KINDS = ("dedicated", "shared")
DEPLOYMENTS = ("on_premise", "dedicated_cloud", "shared_cloud")
IMPACTS = ("outage", "degraded", "maintenance")
PRIORITIES = ("urgent", "high", "normal", "low")
METRICS = ("first_response", "next_response", "resolution")
DIRECTIONS = ("client", "team")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"CHECK ({column} IN ({', '.join(repr(v) for v in values)}))"


MIGRATIONS: list[str] = [
    # 1: the support terms' tables, the monitoring log and the audit trail.
    f"""
    CREATE TABLE clients (
        client_id     VARCHAR PRIMARY KEY,
        name          VARCHAR NOT NULL,
        tier          VARCHAR NOT NULL {_one_of('tier', TIERS)},
        email_domain  VARCHAR
    );
    CREATE TABLE environments (
        environment_id VARCHAR PRIMARY KEY,
        name           VARCHAR NOT NULL,
        kind           VARCHAR NOT NULL {_one_of('kind', KINDS)},
        deployment     VARCHAR NOT NULL {_one_of('deployment', DEPLOYMENTS)},
        client_id      VARCHAR REFERENCES clients (client_id),
        active_from    DATE NOT NULL,
        CHECK (kind = 'shared' OR client_id IS NOT NULL)
    );
    CREATE TABLE contracts (
        contract_id            VARCHAR PRIMARY KEY,
        client_id              VARCHAR NOT NULL REFERENCES clients (client_id),
        environment_id         VARCHAR NOT NULL REFERENCES environments (environment_id),
        uptime_target_pct      DECIMAL(7, 4) CHECK (uptime_target_pct > 0 AND uptime_target_pct <= 100),
        response_business_days INTEGER CHECK (response_business_days BETWEEN 1 AND 60),
        monthly_fee            DECIMAL(18, 2) NOT NULL CHECK (monthly_fee >= 0),
        currency               VARCHAR NOT NULL,
        credit_schedule        VARCHAR,
        starts_on              DATE NOT NULL CHECK (day(starts_on) = 1),
        ends_on                DATE CHECK (ends_on >= starts_on)
    );
    CREATE TABLE cases (
        case_id           VARCHAR PRIMARY KEY,
        client_id         VARCHAR NOT NULL REFERENCES clients (client_id),
        received_at       TIMESTAMPTZ NOT NULL,
        category          VARCHAR NOT NULL {_one_of('category', CATEGORIES)},
        subject           VARCHAR NOT NULL,
        requester         VARCHAR,
        assignee          VARCHAR,
        first_response_at TIMESTAMPTZ CHECK (first_response_at >= received_at),
        resolved_at       TIMESTAMPTZ CHECK (resolved_at >= received_at)
    );
    CREATE TABLE incidents (
        incident_id    VARCHAR PRIMARY KEY,
        environment_id VARCHAR NOT NULL REFERENCES environments (environment_id),
        impact         VARCHAR NOT NULL {_one_of('impact', IMPACTS)},
        started_at     TIMESTAMPTZ NOT NULL,
        ended_at       TIMESTAMPTZ CHECK (ended_at >= started_at),
        summary        VARCHAR
    );
    CREATE TABLE monitoring_checks (
        environment_id VARCHAR NOT NULL REFERENCES environments (environment_id),
        checked_at     TIMESTAMPTZ NOT NULL,
        checked_by     VARCHAR NOT NULL,
        note           VARCHAR
    );
    CREATE SEQUENCE audit_seq;
    CREATE TABLE audit_log (
        audit_id    BIGINT PRIMARY KEY DEFAULT nextval('audit_seq'),
        logged_at   TIMESTAMPTZ NOT NULL,
        actor       VARCHAR NOT NULL,
        action      VARCHAR NOT NULL,
        table_name  VARCHAR NOT NULL,
        row_id      VARCHAR,
        before      JSON,
        after       JSON
    );
    """,
    # 2: corrections: a case or incident voided by a person (with a reason) leaves every computation;
    # a breached case can carry the reason it was breached.
    """
    ALTER TABLE cases ADD COLUMN voided_at TIMESTAMPTZ;
    ALTER TABLE cases ADD COLUMN void_reason VARCHAR;
    ALTER TABLE cases ADD COLUMN breach_reason VARCHAR;
    ALTER TABLE incidents ADD COLUMN voided_at TIMESTAMPTZ;
    ALTER TABLE incidents ADD COLUMN void_reason VARCHAR;
    """,
    # 3: the service: API tokens (stored hashed), runs of its background jobs, webhook deliveries seen.
    f"""
    CREATE TABLE api_tokens (
        token_id     VARCHAR PRIMARY KEY,
        name         VARCHAR NOT NULL,
        role         VARCHAR NOT NULL {_one_of('role', ROLES)},
        token_hash   VARCHAR NOT NULL UNIQUE,
        created_at   TIMESTAMPTZ NOT NULL,
        created_by   VARCHAR NOT NULL,
        revoked_at   TIMESTAMPTZ,
        last_used_at TIMESTAMPTZ
    );
    CREATE TABLE job_runs (
        kind        VARCHAR NOT NULL,       -- 'backup'; later 'mail', 'alerts' (kb.service.jobs)
        started_at  TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ,            -- null while it runs, or when the process died during it
        error       VARCHAR,                -- null when it succeeded
        detail      VARCHAR                 -- what it did, e.g. the backup file written
    );
    CREATE TABLE webhook_events (
        source      VARCHAR NOT NULL,       -- 'alertmanager', 'uptime-kuma'
        event_key   VARCHAR NOT NULL,       -- one applied delivery: a replay finds it and changes nothing
        received_at TIMESTAMPTZ NOT NULL,
        subject     VARCHAR,                -- the alert fingerprint, or the monitor, it is about
        incident_id VARCHAR,                -- the incident it opened or closed, if any
        PRIMARY KEY (source, event_key)
    );
    """,
    # alerts and statements: each alert (or statement), once per channel; sent_at stays empty until the server
    # took it (retried until then); who gets a client's monthly statement (addresses, comma-separated).
    """
    ALTER TABLE clients ADD COLUMN statement_recipients VARCHAR;
    CREATE TABLE alert_deliveries (
        alert_key  VARCHAR NOT NULL,
        channel    VARCHAR NOT NULL CHECK (channel IN ('email', 'webhook')),
        kind       VARCHAR NOT NULL,
        breach     BOOLEAN NOT NULL,
        roles      VARCHAR[] NOT NULL,
        subject    VARCHAR NOT NULL,
        body       VARCHAR NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        sent_at    TIMESTAMPTZ,
        attempts   INTEGER NOT NULL DEFAULT 0,
        last_error VARCHAR,
        PRIMARY KEY (alert_key, channel)
    );
    """,
    # mail (kb/mail): every message taken once (by Message-ID, else a hash), with its thread's case; the IMAP
    # UIDs read per mailbox and folder; cases and clients say where they came from.
    """
    CREATE TABLE messages (
        message_key      VARCHAR PRIMARY KEY,   -- the Message-ID without <>, else 'sha256:' + a hash
        message_id       VARCHAR,
        case_id          VARCHAR,               -- the thread's case; null for a team or automatic message
        mailbox          VARCHAR NOT NULL,      -- a [[mail.mailboxes]] name, or 'import'
        folder           VARCHAR NOT NULL,      -- an IMAP folder, or the file it was imported from
        from_address     VARCHAR NOT NULL,
        from_name        VARCHAR,
        is_team          BOOLEAN NOT NULL,
        is_automatic     BOOLEAN NOT NULL,
        automatic_reason VARCHAR,
        received_at      TIMESTAMPTZ,           -- the instant the rules use: receipt, or a team message's Date
        subject          VARCHAR,
        links            VARCHAR[],             -- In-Reply-To, then References nearest first
        taken_at         TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE imap_state (
        mailbox     VARCHAR NOT NULL,
        folder      VARCHAR NOT NULL,
        uidvalidity BIGINT,                     -- null until the folder was opened once
        last_uid    BIGINT NOT NULL DEFAULT 0,  -- every UID up to it is taken (or skipped with its reason)
        polled_at   TIMESTAMPTZ,
        last_error  VARCHAR,                    -- the last poll's error, null when it went well
        PRIMARY KEY (mailbox, folder)
    );
    ALTER TABLE cases ADD COLUMN message_id VARCHAR;
    ALTER TABLE cases ADD COLUMN source VARCHAR;
    ALTER TABLE clients ADD COLUMN source VARCHAR;
    """,
    # alerts: one recorded but no longer true when it could go (the case was answered, resolved, voided or
    # moved on while the mail server was down) is withdrawn rather than sent.
    """
    ALTER TABLE alert_deliveries ADD COLUMN withdrawn_at TIMESTAMPTZ;
    """,
    # mail that cannot be stored is held aside, alone, with its reason, for an admin to retry or discard; a message
    # claiming to be the team's that nothing vouches for (a sent folder, a trusted Authentication-Results, an
    # import with --trust-team) is kept on its thread as unverified and counts for nothing.
    """
    CREATE TABLE mail_quarantine (
        message_key   VARCHAR PRIMARY KEY,   -- as messages.message_key
        message_id    VARCHAR,
        mailbox       VARCHAR NOT NULL,      -- a [[mail.mailboxes]] name, or 'import'
        folder        VARCHAR NOT NULL,      -- an IMAP folder, or the file it was imported from
        uid           BIGINT,                -- the IMAP UID; null for an import
        read_from     VARCHAR NOT NULL,      -- where it was read, as reported ("support/INBOX UID 7")
        from_address  VARCHAR NOT NULL,
        subject       VARCHAR,
        received_at   TIMESTAMPTZ,           -- its instant as read (INTERNALDATE, mbox From line): a retry reuses it
        vouched       BOOLEAN NOT NULL,      -- read from a sent folder, or imported with --trust-team
        raw           BLOB NOT NULL,         -- the message as read, for a retry
        reason        VARCHAR NOT NULL,      -- why it could not be stored (the last attempt's)
        first_seen_at TIMESTAMPTZ NOT NULL,
        status        VARCHAR NOT NULL CHECK (status IN ('held', 'retried', 'discarded')),
        decided_by    VARCHAR,               -- who retried (successfully) or discarded it, and when
        decided_at    TIMESTAMPTZ
    );
    ALTER TABLE messages ADD COLUMN unverified BOOLEAN DEFAULT false;
    """,
    # webhooks: the sender's own time and state of each delivery (a monitor's state follows its heartbeats' times,
    # not the order they arrive in), and what the delivery did.
    """
    ALTER TABLE webhook_events ADD COLUMN occurred_at TIMESTAMPTZ;  -- a heartbeat's time; an alert's start or end
    ALTER TABLE webhook_events ADD COLUMN state VARCHAR;            -- firing, resolved; down, up, pending, maintenance
    ALTER TABLE webhook_events ADD COLUMN outcome VARCHAR;          -- opened, closed, voided, unknown environment …
    UPDATE webhook_events SET state = regexp_extract(event_key, ':([a-z]+)$', 1);
    UPDATE webhook_events
       SET occurred_at = try_cast(regexp_extract(event_key, '@([0-9]{4}-[^@]+):[a-z]+$', 1) AS TIMESTAMPTZ)
     WHERE source = 'uptime-kuma';
    """,
    # forms submitted once: each Log case (or incident) form carries a key of its own; a second submission of the
    # same form, however late, finds the row the first one stored instead of adding another.
    """
    CREATE TABLE form_submissions (
        form_key     VARCHAR PRIMARY KEY,
        table_name   VARCHAR NOT NULL,
        row_id       VARCHAR NOT NULL,
        submitted_at TIMESTAMPTZ NOT NULL
    );
    """,
    # every promise an SLA makes (rules: policies, priorities, pauses): a case's priority picks its targets from
    # its client's policy; a policy is one row per metric, priority ('*': any) and date it is valid from; a pause
    # ("waiting on the client") stops the resolution clock; messages of a case come from mail or an import
    # (direction 'client' or 'team'), so an imported message has no mailbox, folder or sender.
    f"""
    ALTER TABLE cases ADD COLUMN priority VARCHAR DEFAULT 'normal';
    UPDATE cases SET priority = 'normal';
    ALTER TABLE contracts ADD COLUMN policy_id VARCHAR;
    CREATE TABLE policies (
        policy_id  VARCHAR NOT NULL,
        metric     VARCHAR NOT NULL {_one_of('metric', METRICS)},
        priority   VARCHAR NOT NULL {_one_of('priority', PRIORITIES + ('*',))},
        within     VARCHAR NOT NULL,                -- 'Nh', 'Nd' or 'next_day_close'
        calendar   VARCHAR NOT NULL DEFAULT 'support',
        valid_from DATE NOT NULL DEFAULT DATE '1970-01-01',
        PRIMARY KEY (policy_id, metric, priority, valid_from)
    );
    CREATE TABLE pauses (
        case_id    VARCHAR NOT NULL,  -- no foreign key: DuckDB would then refuse every correction of a paused case
        paused_at  TIMESTAMPTZ NOT NULL,
        resumed_at TIMESTAMPTZ CHECK (resumed_at >= paused_at),
        reason     VARCHAR,
        paused_by  VARCHAR,
        resumed_by VARCHAR,                         -- a person, or 'mail' when the client wrote back
        PRIMARY KEY (case_id, paused_at)
    );
    ALTER TABLE messages ALTER COLUMN mailbox DROP NOT NULL;
    ALTER TABLE messages ALTER COLUMN folder DROP NOT NULL;
    ALTER TABLE messages ALTER COLUMN from_address DROP NOT NULL;
    ALTER TABLE messages ADD COLUMN source VARCHAR DEFAULT 'mail';  -- 'mail', 'import', 'queue'
    UPDATE messages SET source = 'mail';
    """,
    # closed months (rules §13): a lead closes a month, freezing its uptime, credits and statements' cases as they
    # were computed then (each closing a version, kept when an admin reopens the month and it is closed again);
    # every statement as e-mailed, byte for byte; the credits of closed months marked applied, with a reference.
    """
    CREATE TABLE month_closings (
        month         VARCHAR NOT NULL,      -- 'YYYY-MM', in the support zone
        version       INTEGER NOT NULL,      -- 1, then one more each time it is closed again
        closed_at     TIMESTAMPTZ NOT NULL,
        closed_by     VARCHAR NOT NULL,
        reopened_at   TIMESTAMPTZ,           -- set when an admin reopened this version
        reopened_by   VARCHAR,
        reopen_reason VARCHAR,
        PRIMARY KEY (month, version)
    );
    CREATE TABLE closed_uptime (             -- the env_uptime rows of the month at closing
        version             INTEGER NOT NULL,
        environment_id      VARCHAR NOT NULL,
        environment_name    VARCHAR,
        kind                VARCHAR,
        client_id           VARCHAR,
        month               VARCHAR NOT NULL,
        period_start        TIMESTAMPTZ,
        period_end          TIMESTAMPTZ,
        period_us           BIGINT,
        downtime_us         HUGEINT,
        downtime_minutes    DOUBLE,
        uptime_pct          DOUBLE,
        target_bp           HUGEINT,
        target_pct          DOUBLE,
        budget_minutes      DOUBLE,
        budget_left_minutes DOUBLE,
        target_met          BOOLEAN,
        status              VARCHAR,
        PRIMARY KEY (month, version, environment_id)
    );
    CREATE TABLE closed_refunds (            -- the contract_refunds rows of the month at closing
        version                INTEGER NOT NULL,
        contract_id            VARCHAR NOT NULL,
        client_id              VARCHAR,
        environment_id         VARCHAR,
        month                  VARCHAR NOT NULL,
        uptime_pct             DOUBLE,
        downtime_minutes       DOUBLE,
        credit_pct             DECIMAL(14, 4),
        refund_amount          DOUBLE,
        currency               VARCHAR,
        status                 VARCHAR,
        monthly_fee            DECIMAL(18, 2),
        credit_schedule        VARCHAR,
        uptime_target_pct      DECIMAL(7, 4),
        response_business_days INTEGER,
        starts_on              DATE,
        ends_on                DATE,
        minutes_to_next_tier   DOUBLE,
        next_credit_pct        DECIMAL(9, 4),
        PRIMARY KEY (month, version, contract_id)
    );
    CREATE TABLE closed_cases (              -- the first responses of the cases received in the month, at closing
        month              VARCHAR NOT NULL,
        version            INTEGER NOT NULL,
        case_id            VARCHAR NOT NULL,
        client_id          VARCHAR NOT NULL,
        received_at        TIMESTAMPTZ NOT NULL,
        first_response_due TIMESTAMPTZ,
        first_response_at  TIMESTAMPTZ,
        sla_state          VARCHAR NOT NULL,
        PRIMARY KEY (month, version, case_id)
    );
    CREATE TABLE sent_statements (
        client_id VARCHAR NOT NULL,
        month     VARCHAR NOT NULL,
        sent_at   TIMESTAMPTZ NOT NULL,
        pdf       BLOB NOT NULL,             -- the attachment as e-mailed
        sha256    VARCHAR NOT NULL,
        PRIMARY KEY (client_id, month)
    );
    CREATE TABLE credit_applications (
        contract_id VARCHAR NOT NULL,
        month       VARCHAR NOT NULL,
        version     INTEGER NOT NULL,        -- the closing whose credit was applied
        amount      DOUBLE NOT NULL,
        currency    VARCHAR NOT NULL,
        applied_at  TIMESTAMPTZ NOT NULL,
        applied_by  VARCHAR NOT NULL,
        reference   VARCHAR NOT NULL,        -- an invoice or credit note number
        PRIMARY KEY (contract_id, month)
    );
    """,
    # a closed month's statements read every target due in it as computed at the closing (rules §13), not only
    # its cases' first responses: a rule edited in place later, a tier changed, leave them as they were.
    """
    CREATE TABLE closed_targets (            -- every target due in the month, of every kind, at closing
        month       VARCHAR NOT NULL,
        version     INTEGER NOT NULL,
        metric      VARCHAR NOT NULL,
        case_id     VARCHAR NOT NULL,
        client_id   VARCHAR NOT NULL,
        tier        VARCHAR NOT NULL,
        priority    VARCHAR,
        category    VARCHAR,
        assignee    VARCHAR,
        subject     VARCHAR,
        started_at  TIMESTAMPTZ NOT NULL,    -- received, or the question asked
        due         TIMESTAMPTZ NOT NULL,
        stopped_at  TIMESTAMPTZ,             -- null: not yet at closing
        state       VARCHAR NOT NULL         -- (no key: a case's client may ask twice in the same second)
    );
    -- which closings kept them: one made before kept none, and its month's targets are read as computed
    ALTER TABLE month_closings ADD COLUMN targets_kept BOOLEAN NOT NULL DEFAULT FALSE;
    """,
    # follow-up questions (kb/db/answers.py): each client message keeps the instant of the team message that
    # answers it, found by every write of messages rather than by every computation
    f"""
    ALTER TABLE messages ADD COLUMN answered_at TIMESTAMPTZ;
    {answered_sql("")};
    """,
    # a closed month's statement names each client as its closing found it (kb/intake/closing.py)
    """
    CREATE TABLE closed_clients (            -- every client's name and tier at closing
        month     VARCHAR NOT NULL,
        version   INTEGER NOT NULL,
        client_id VARCHAR NOT NULL,
        name      VARCHAR NOT NULL,
        tier      VARCHAR NOT NULL,
        PRIMARY KEY (month, version, client_id)
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
