-- Up Migration

-- The soft-bounce reset rule (see soft_bounce_probe in 0004), named once for the two statements
-- that apply it: the batched submission (markSubmitted) and the soft bounce (writeSoftBounce).
-- The probe is the latest message submitted to a reader who has soft bounces; it went through
-- when it drew no bounce of its own, and then the reader's earlier soft bounces no longer count.
--
-- STABLE, so it reads bounces with the snapshot of the statement that calls it, exactly as the
-- subquery it replaces did: a bounce that statement inserts is not seen, nor one another
-- transaction commits meanwhile. A soft bounce of the probe itself must therefore not ask (its
-- own row is that bounce): its statement asks only about a probe that is another message.
CREATE FUNCTION soft_bounce_probe_went_through(probe bigint) RETURNS boolean
  LANGUAGE sql STABLE
  RETURN probe IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM bounces b WHERE b.message_id = probe AND b.type IN ('hard', 'soft'));

COMMENT ON FUNCTION soft_bounce_probe_went_through(bigint) IS
  'True when the soft-bounce probe (subscribers.soft_bounce_probe) drew no hard or soft bounce: mail gets through to the reader again.';

-- Down Migration

DROP FUNCTION soft_bounce_probe_went_through(bigint);
