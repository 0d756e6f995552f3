// The PostgreSQL schema that PostgresTaskStore and PostgresTicketStore share: its tables, the
// server-side functions that make a commit and an eviction one round trip each, and migrations.

import type postgres from "postgres";

/** The npm:postgres client, kept out of every public signature. */
export type Sql = postgres.Sql;

/** The schema version this code writes; a database at a later version is refused. */
export const SCHEMA_VERSION = 1;

/** The key of the transaction-level advisory lock that serializes migrations (any bigint). */
const MIGRATION_LOCK = 4_242_000_001;

/** The channel each commit of an event notifies, with `seq:taskId` (or `*`) as payload. */
export const EVENTS_CHANNEL = "a2a_events";
/** The channel `requestCancel()` notifies, with the task id as payload. */
export const CANCEL_CHANNEL = "a2a_cancel";

/**
 * Migration `n` (1-based) takes the schema from version `n - 1` to `n`. Each runs in the
 * migrating transaction, under the advisory lock, so processes that start at once migrate once.
 */
const MIGRATIONS: readonly string[] = [
  // 1: tasks in pieces, the event log, indexes of owners, messages and contexts, push configs,
  // leases, cancel requests and tickets.
  String.raw`
CREATE TABLE a2a_tasks (
  id text COLLATE "C" PRIMARY KEY,
  owner text COLLATE "C" NOT NULL,
  -- SHA-256 of the context id's UTF-8: client-chosen ids may be long or hold a NUL.
  context_key bytea NOT NULL,
  state text NOT NULL,
  -- The status timestamp as given ('' without one), and Date.parse of it for the filter.
  ts text COLLATE "C" NOT NULL,
  ts_ms double precision,
  last_seq integer NOT NULL,
  -- The process that last committed an event while the task was SUBMITTED or WORKING.
  runner uuid,
  unfinished boolean NOT NULL,
  status json NOT NULL,
  -- The task without status, history and artifacts: id, contextId, metadata, ...
  fields json NOT NULL,
  history_count integer NOT NULL,
  has_history boolean NOT NULL,
  artifact_count integer NOT NULL,
  has_artifacts boolean NOT NULL,
  -- When the task ended (the retention clock, ms) and in which order tasks ended.
  ended_at double precision,
  ended_seq bigint
);
CREATE INDEX a2a_tasks_listing ON a2a_tasks (owner, ts DESC, id DESC);
CREATE INDEX a2a_tasks_ended ON a2a_tasks (ended_seq) WHERE ended_seq IS NOT NULL;
CREATE INDEX a2a_tasks_unfinished ON a2a_tasks (runner) WHERE unfinished;
CREATE SEQUENCE a2a_ended_seq;

CREATE TABLE a2a_messages (
  task_id text COLLATE "C" NOT NULL,
  idx integer NOT NULL,
  message json NOT NULL,
  PRIMARY KEY (task_id, idx)
);

CREATE TABLE a2a_artifacts (
  task_id text COLLATE "C" NOT NULL,
  idx integer NOT NULL,
  -- The artifact without its parts.
  fields json NOT NULL,
  part_count integer NOT NULL,
  PRIMARY KEY (task_id, idx)
);

CREATE TABLE a2a_artifact_parts (
  task_id text COLLATE "C" NOT NULL,
  artifact integer NOT NULL,
  idx integer NOT NULL,
  part json NOT NULL,
  PRIMARY KEY (task_id, artifact, idx)
);

CREATE TABLE a2a_events (
  task_id text COLLATE "C" NOT NULL,
  seq integer NOT NULL,
  event json NOT NULL,
  PRIMARY KEY (task_id, seq)
);

-- Push configs, each a webhook's place in the durable delivery queue: the seq it has had (or
-- was given up on), whether its task logged more since (pending), when it may be claimed next
-- (a retry time, or the end of a live claim), and by which claim.
CREATE TABLE a2a_push_configs (
  task_id text COLLATE "C" NOT NULL,
  id text COLLATE "C" NOT NULL,
  owner text COLLATE "C" NOT NULL,
  config json NOT NULL,
  cursor_seq integer NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  pending boolean NOT NULL DEFAULT false,
  due_at timestamptz NOT NULL DEFAULT now(),
  claim uuid,
  PRIMARY KEY (task_id, id)
);
CREATE INDEX a2a_push_due ON a2a_push_configs (due_at) WHERE pending;
CREATE TABLE a2a_push_counts (
  owner text COLLATE "C" PRIMARY KEY,
  n integer NOT NULL
);

-- SHA-256 of JSON [owner, messageId] -> where the message is in its task's history.
CREATE TABLE a2a_message_ids (
  key bytea PRIMARY KEY,
  task_id text COLLATE "C" NOT NULL,
  idx integer NOT NULL
);
CREATE INDEX a2a_message_ids_task ON a2a_message_ids (task_id);

CREATE TABLE a2a_contexts (
  key bytea PRIMARY KEY,
  owner text COLLATE "C" NOT NULL,
  tasks integer NOT NULL
);

-- The tasks evicted last (RECENTLY_EVICTED), whose late push configs and commits are refused.
CREATE SEQUENCE a2a_evicted_seq;
CREATE TABLE a2a_evicted (
  task_id text COLLATE "C" PRIMARY KEY,
  n bigint NOT NULL DEFAULT nextval('a2a_evicted_seq')
);
CREATE INDEX a2a_evicted_n ON a2a_evicted (n);

CREATE TABLE a2a_processes (
  id uuid PRIMARY KEY,
  heartbeat_at timestamptz NOT NULL,
  lease_ms integer NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE a2a_cancel_requests (
  task_id text COLLATE "C" PRIMARY KEY,
  requested_at timestamptz NOT NULL
);

CREATE TABLE a2a_tickets (
  ticket text COLLATE "C" PRIMARY KEY,
  user_id text COLLATE "C" NOT NULL,
  expires_at double precision NOT NULL,
  created bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX a2a_tickets_user ON a2a_tickets (user_id, created);
CREATE INDEX a2a_tickets_expiry ON a2a_tickets (expires_at);

-- One commit: the checks, the task row, the new pieces, the event and its doorbell, in one call.
-- Errors: A2A01 seq logged, A2A02 context taken, A2A03 evicted, A2A04 state older than stored,
-- A2A05 an artifact change that does not fit what is stored, A2A06 a change to a task not stored.
-- The scalars come in one small JSON object (fewer parameters make a cheaper call), the values
-- as json parameters of their own.
CREATE FUNCTION a2a_commit(
  p_head json, p_context bytea, p_status json, p_fields json, p_history json,
  p_message_keys json, p_artifacts json, p_art_fields json, p_parts json, p_event json
) RETURNS boolean LANGUAGE plpgsql AS $fn$
DECLARE
  p_id text;
  p_owner text;
  p_last_seq integer;
  p_state text;
  p_ts text;
  p_ts_ms double precision;
  p_unfinished boolean;
  p_terminal boolean;
  p_created boolean;
  p_has_history boolean;
  p_has_artifacts boolean;
  p_art_index integer;
  p_art_from integer;
  p_event_seq integer;
  p_runner uuid;
  p_now double precision;
  p_notify boolean;
  old a2a_tasks%ROWTYPE;
  had boolean;
  fresh boolean;
  joins boolean;
  base integer;
  hcount integer;
  nparts integer;
  acount integer;
  stored integer;
  ended double precision;
  ended_n bigint;
  newly boolean := false;
  has_push boolean;
BEGIN
  SELECT h.id, h.owner, h.last_seq, h.state, h.ts, h.ts_ms, h.unfinished, h.terminal, h.created,
      h.has_history, h.has_artifacts, h.art_index, h.art_from, h.event_seq, h.runner, h.now,
      h.notify
    INTO p_id, p_owner, p_last_seq, p_state, p_ts, p_ts_ms, p_unfinished, p_terminal, p_created,
      p_has_history, p_has_artifacts, p_art_index, p_art_from, p_event_seq, p_runner, p_now,
      p_notify
    FROM json_to_record(p_head) AS h(id text, owner text, last_seq integer, state text, ts text,
      ts_ms double precision, unfinished boolean, terminal boolean, created boolean,
      has_history boolean, has_artifacts boolean, art_index integer, art_from integer,
      event_seq integer, runner uuid, now double precision, notify boolean);
  SELECT * INTO old FROM a2a_tasks WHERE id = p_id FOR UPDATE;
  had := FOUND;
  IF p_event_seq IS NOT NULL AND had AND p_event_seq <= old.last_seq THEN
    RAISE EXCEPTION USING ERRCODE = 'A2A01', MESSAGE = 'logged';
  END IF;
  IF had AND p_last_seq < old.last_seq THEN
    RAISE EXCEPTION USING ERRCODE = 'A2A04', MESSAGE = old.last_seq::text;
  END IF;
  IF NOT had THEN
    -- Serialized with a push config put for the task before it exists (no row to lock yet).
    PERFORM pg_advisory_xact_lock(4243, hashtext(p_id));
    IF NOT p_created AND EXISTS (SELECT 1 FROM a2a_evicted WHERE task_id = p_id) THEN
      RAISE EXCEPTION USING ERRCODE = 'A2A03', MESSAGE = 'evicted';
    END IF;
    IF NOT p_created THEN
      -- The caller sent only what changed: it sends the whole task instead.
      RAISE EXCEPTION USING ERRCODE = 'A2A06', MESSAGE = 'absent';
    END IF;
    DELETE FROM a2a_evicted WHERE task_id = p_id;
  END IF;
  fresh := NOT had OR p_created;
  joins := NOT had OR old.context_key <> p_context;

  -- The context: claimed by its first task, checked by every task that joins it or is created.
  IF joins OR p_created THEN
    INSERT INTO a2a_contexts AS c (key, owner, tasks)
      VALUES (p_context, p_owner, CASE WHEN joins THEN 1 ELSE 0 END)
      ON CONFLICT (key) DO UPDATE SET tasks = c.tasks + EXCLUDED.tasks
      WHERE c.owner = EXCLUDED.owner;
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'A2A02', MESSAGE = 'taken';
    END IF;
    IF joins AND had THEN
      UPDATE a2a_contexts SET tasks = tasks - 1 WHERE key = old.context_key;
      DELETE FROM a2a_contexts WHERE key = old.context_key AND tasks <= 0;
    END IF;
  END IF;

  -- History: appended messages only; a task created again over an old one drops its pieces.
  IF fresh AND had THEN
    DELETE FROM a2a_messages WHERE task_id = p_id;
    DELETE FROM a2a_message_ids WHERE task_id = p_id;
    DELETE FROM a2a_artifact_parts WHERE task_id = p_id;
    DELETE FROM a2a_artifacts WHERE task_id = p_id;
  END IF;
  base := CASE WHEN fresh THEN 0 ELSE old.history_count END;
  hcount := base;
  IF p_history IS NOT NULL THEN
    INSERT INTO a2a_messages (task_id, idx, message)
      SELECT p_id, base + h.o::integer - 1, h.m
      FROM json_array_elements(p_history) WITH ORDINALITY AS h(m, o);
    GET DIAGNOSTICS nparts = ROW_COUNT;
    hcount := base + nparts;
  END IF;
  IF p_message_keys IS NOT NULL THEN
    INSERT INTO a2a_message_ids (key, task_id, idx)
      SELECT decode(k.v ->> 0, 'hex'), p_id, base + (k.v ->> 1)::integer
      FROM json_array_elements(p_message_keys) AS k(v)
      ON CONFLICT (key) DO UPDATE SET task_id = EXCLUDED.task_id, idx = EXCLUDED.idx;
  END IF;

  -- Artifacts: all of a created task's; else the one changed, new parts only when appended to.
  IF fresh THEN
    acount := 0;
    IF p_artifacts IS NOT NULL THEN
      INSERT INTO a2a_artifacts (task_id, idx, fields, part_count)
        SELECT p_id, a.o::integer - 1, a.v -> 'f', (a.v ->> 'n')::integer
        FROM json_array_elements(p_artifacts) WITH ORDINALITY AS a(v, o);
      GET DIAGNOSTICS acount = ROW_COUNT;
      INSERT INTO a2a_artifact_parts (task_id, artifact, idx, part)
        SELECT p_id, a.o::integer - 1, p.o::integer - 1, p.v
        FROM json_array_elements(p_parts) WITH ORDINALITY AS a(ps, o),
          json_array_elements(a.ps) WITH ORDINALITY AS p(v, o);
    END IF;
  ELSE
    acount := old.artifact_count;
    IF p_art_index IS NOT NULL THEN
      IF p_art_index > old.artifact_count THEN
        RAISE EXCEPTION USING ERRCODE = 'A2A05', MESSAGE = format(
          'artifact %s would leave a gap after the %s stored', p_art_index, old.artifact_count);
      END IF;
      IF p_art_from = 0 THEN
        DELETE FROM a2a_artifact_parts WHERE task_id = p_id AND artifact = p_art_index;
      ELSE
        SELECT part_count INTO stored FROM a2a_artifacts WHERE task_id = p_id AND idx = p_art_index;
        IF stored IS DISTINCT FROM p_art_from THEN
          RAISE EXCEPTION USING ERRCODE = 'A2A05', MESSAGE = format(
            'artifact %s is appended to from part %s, but the store has %s parts of it',
            p_art_index, p_art_from, coalesce(stored, 0));
        END IF;
      END IF;
      INSERT INTO a2a_artifact_parts (task_id, artifact, idx, part)
        SELECT p_id, p_art_index, p_art_from + p.o::integer - 1, p.v
        FROM json_array_elements(p_parts) WITH ORDINALITY AS p(v, o);
      GET DIAGNOSTICS nparts = ROW_COUNT;
      INSERT INTO a2a_artifacts AS a (task_id, idx, fields, part_count)
        VALUES (p_id, p_art_index, p_art_fields, p_art_from + nparts)
        ON CONFLICT (task_id, idx) DO UPDATE SET part_count = EXCLUDED.part_count,
          -- Unchanged fields keep their stored value rather than being written again.
          fields = CASE WHEN a.fields::text = EXCLUDED.fields::text THEN a.fields
            ELSE EXCLUDED.fields END;
      acount := greatest(acount, p_art_index + 1);
    END IF;
  END IF;

  -- Retention: a task is dated when it first ends, and undated if it comes back.
  IF p_terminal THEN
    IF had AND old.ended_seq IS NOT NULL THEN
      ended := old.ended_at;
      ended_n := old.ended_seq;
    ELSE
      ended := p_now;
      ended_n := nextval('a2a_ended_seq');
      newly := true;
    END IF;
  END IF;

  IF had THEN
    UPDATE a2a_tasks SET owner = p_owner, context_key = p_context, state = p_state, ts = p_ts,
      ts_ms = p_ts_ms, last_seq = p_last_seq,
      runner = CASE WHEN p_event_seq IS NOT NULL AND p_unfinished THEN p_runner ELSE runner END,
      unfinished = p_unfinished, status = p_status,
      fields = CASE WHEN fresh OR joins THEN p_fields ELSE fields END,
      history_count = hcount,
      has_history = p_has_history OR (NOT fresh AND has_history),
      artifact_count = acount,
      has_artifacts = p_has_artifacts OR (NOT fresh AND has_artifacts),
      ended_at = ended, ended_seq = ended_n
    WHERE id = p_id;
  ELSE
    INSERT INTO a2a_tasks (id, owner, context_key, state, ts, ts_ms, last_seq, runner, unfinished,
      status, fields, history_count, has_history, artifact_count, has_artifacts, ended_at,
      ended_seq)
    VALUES (p_id, p_owner, p_context, p_state, p_ts, p_ts_ms, p_last_seq,
      CASE WHEN p_event_seq IS NOT NULL AND p_unfinished THEN p_runner END, p_unfinished,
      p_status, p_fields, hcount, p_has_history,
      acount, p_has_artifacts, ended, ended_n);
  END IF;

  IF p_event_seq IS NOT NULL THEN
    -- The primary key refuses a seq another process logged meanwhile (unique_violation).
    INSERT INTO a2a_events (task_id, seq, event) VALUES (p_id, p_event_seq, p_event);
    -- The task's webhooks have something to deliver: they join the delivery queue.
    has_push := EXISTS (SELECT 1 FROM a2a_push_configs WHERE task_id = p_id);
    IF has_push THEN
      UPDATE a2a_push_configs SET pending = true, due_at = now()
        WHERE task_id = p_id AND NOT pending;
    END IF;
    IF p_notify THEN
      PERFORM pg_notify('a2a_events', CASE WHEN octet_length(p_id) <= 7000
        THEN p_event_seq::text || CASE WHEN has_push THEN ':p:' ELSE '::' END || p_id
        ELSE '*' END);
    END IF;
  END IF;
  RETURN newly;
END
$fn$;

-- Evicts the listed ended tasks ([{ "id": ..., "n": ended_seq }]) that are still as listed and
-- not locked by a commit, with everything stored for them, in one transaction; remembers the
-- last p_keep evicted ids.
CREATE FUNCTION a2a_evict(p_victims json, p_keep integer) RETURNS integer LANGUAGE plpgsql
AS $fn$
DECLARE
  ids text[];
  owners text[];
BEGIN
  SELECT array_agg(s.id) INTO ids FROM (
    SELECT t.id FROM a2a_tasks t
    JOIN json_to_recordset(p_victims) AS v(id text, n bigint) ON v.id = t.id AND v.n = t.ended_seq
    ORDER BY t.id FOR UPDATE OF t SKIP LOCKED
  ) s;
  IF ids IS NULL THEN
    RETURN 0;
  END IF;
  -- Shared rows are locked in key order, so that two evictions never deadlock.
  PERFORM 1 FROM a2a_contexts
    WHERE key IN (SELECT context_key FROM a2a_tasks WHERE id = ANY (ids))
    ORDER BY key FOR UPDATE;
  UPDATE a2a_contexts c SET tasks = c.tasks - g.n
    FROM (SELECT context_key, count(*)::integer AS n FROM a2a_tasks WHERE id = ANY (ids)
      GROUP BY context_key) g
    WHERE c.key = g.context_key;
  DELETE FROM a2a_contexts
    WHERE key IN (SELECT context_key FROM a2a_tasks WHERE id = ANY (ids)) AND tasks <= 0;
  SELECT array_agg(DISTINCT owner ORDER BY owner) INTO owners FROM a2a_push_configs
    WHERE task_id = ANY (ids);
  IF owners IS NOT NULL THEN
    PERFORM 1 FROM a2a_push_counts WHERE owner = ANY (owners) ORDER BY owner FOR UPDATE;
    WITH gone AS (DELETE FROM a2a_push_configs WHERE task_id = ANY (ids) RETURNING owner),
      g AS (SELECT owner, count(*)::integer AS n FROM gone GROUP BY owner)
    UPDATE a2a_push_counts c SET n = c.n - g.n FROM g WHERE c.owner = g.owner;
    DELETE FROM a2a_push_counts WHERE owner = ANY (owners) AND n <= 0;
  END IF;
  DELETE FROM a2a_message_ids WHERE task_id = ANY (ids);
  DELETE FROM a2a_messages WHERE task_id = ANY (ids);
  DELETE FROM a2a_artifact_parts WHERE task_id = ANY (ids);
  DELETE FROM a2a_artifacts WHERE task_id = ANY (ids);
  DELETE FROM a2a_events WHERE task_id = ANY (ids);
  DELETE FROM a2a_cancel_requests WHERE task_id = ANY (ids);
  DELETE FROM a2a_tasks WHERE id = ANY (ids);
  INSERT INTO a2a_evicted (task_id) SELECT unnest(ids)
    ON CONFLICT (task_id) DO UPDATE SET n = nextval('a2a_evicted_seq');
  DELETE FROM a2a_evicted WHERE n <= (SELECT max(n) FROM a2a_evicted) - p_keep;
  RETURN array_length(ids, 1);
END
$fn$;

-- Claims the webhook delivery due first: a pending config (no live claim, no retry ahead), and
-- the event after its cursor. A config with none left stops pending, decided under its task's
-- row lock so that a commit logging an event meanwhile is seen.
CREATE FUNCTION a2a_claim(p_claim uuid, p_lock_ms double precision)
RETURNS TABLE (o_task_id text, o_id text, o_owner text, o_config json, o_attempts integer,
  o_event json)
LANGUAGE plpgsql AS $fn$
DECLARE
  c record;
  e json;
BEGIN
  LOOP
    SELECT x.task_id, x.id, x.cursor_seq INTO c FROM a2a_push_configs x
      WHERE x.pending AND x.due_at <= now() ORDER BY x.due_at LIMIT 1
      FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
      RETURN;
    END IF;
    SELECT v.event INTO e FROM a2a_events v
      WHERE v.task_id = c.task_id AND v.seq > c.cursor_seq ORDER BY v.seq LIMIT 1;
    IF e IS NULL THEN
      PERFORM 1 FROM a2a_tasks t WHERE t.id = c.task_id FOR SHARE;
      SELECT v.event INTO e FROM a2a_events v
        WHERE v.task_id = c.task_id AND v.seq > c.cursor_seq ORDER BY v.seq LIMIT 1;
    END IF;
    IF e IS NULL THEN
      UPDATE a2a_push_configs x SET pending = false WHERE x.task_id = c.task_id AND x.id = c.id;
    ELSE
      UPDATE a2a_push_configs x
        SET claim = p_claim, due_at = now() + p_lock_ms * interval '1 millisecond'
        WHERE x.task_id = c.task_id AND x.id = c.id
        RETURNING x.task_id, x.id, x.owner, x.config, x.attempts
        INTO o_task_id, o_id, o_owner, o_config, o_attempts;
      o_event := e;
      RETURN NEXT;
      RETURN;
    END IF;
  END LOOP;
END
$fn$;

-- Records what became of a claimed delivery; nothing when the claim is no longer the config's.
CREATE FUNCTION a2a_settle(p_task text, p_id text, p_claim uuid, p_seq integer, p_done boolean,
  p_delay_ms double precision) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  IF p_done THEN
    -- Under the task's row lock, so that an event a commit is logging counts as pending.
    PERFORM 1 FROM a2a_tasks t WHERE t.id = p_task FOR SHARE;
    UPDATE a2a_push_configs x SET cursor_seq = greatest(x.cursor_seq, p_seq), attempts = 0,
      claim = NULL, due_at = now(),
      pending = EXISTS (SELECT 1 FROM a2a_events v
        WHERE v.task_id = p_task AND v.seq > greatest(x.cursor_seq, p_seq))
      WHERE x.task_id = p_task AND x.id = p_id AND x.claim = p_claim;
  ELSE
    UPDATE a2a_push_configs x SET attempts = x.attempts + 1, claim = NULL,
      due_at = now() + greatest(p_delay_ms, 0) * interval '1 millisecond'
      WHERE x.task_id = p_task AND x.id = p_id AND x.claim = p_claim;
  END IF;
END
$fn$;
`,
];

/**
 * Creates or migrates the schema, once however many processes start at once: the migrations run
 * in one transaction that first takes an advisory lock, so the others wait and find it done.
 *
 * @param sql The connection pool.
 * @throws {Error} When the database's schema is newer than this code.
 */
export async function migrate(sql: Sql): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK}::bigint)`;
    await tx`CREATE TABLE IF NOT EXISTS a2a_schema_version (version integer NOT NULL)`;
    const rows = await tx<{ version: number }[]>`SELECT version FROM a2a_schema_version`;
    const version = rows[0]?.version ?? 0;
    if (version > SCHEMA_VERSION) {
      throw new Error(
        `Cannot use the database: its a2a schema is version ${version}, newer than this ` +
          `library's ${SCHEMA_VERSION}`,
      );
    }
    for (let v = version; v < SCHEMA_VERSION; v++) await tx.unsafe(MIGRATIONS[v]!);
    if (rows.length === 0) {
      await tx`INSERT INTO a2a_schema_version (version) VALUES (${SCHEMA_VERSION})`;
    } else if (version < SCHEMA_VERSION) {
      await tx`UPDATE a2a_schema_version SET version = ${SCHEMA_VERSION}`;
    }
  });
}

/** The pools of open stores, for the ticket store that shares one (not a public property). */
const pools = new WeakMap<object, Sql>();

/**
 * Records the pool a store uses, so that a {@linkcode PostgresTicketStore} can share it.
 *
 * @param owner The store.
 * @param sql Its pool.
 */
export function sharePool(owner: object, sql: Sql): void {
  pools.set(owner, sql);
}

/**
 * Finds the pool a store shares.
 *
 * @param owner The store.
 * @returns Its pool, or undefined when it has none (it was not connected, or closed).
 */
export function sharedPool(owner: object): Sql | undefined {
  return pools.get(owner);
}

/**
 * Forgets a store's pool when it closes.
 *
 * @param owner The store.
 */
export function unsharePool(owner: object): void {
  pools.delete(owner);
}
