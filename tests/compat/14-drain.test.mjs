// Draining one node of a load-balanced cluster under traffic (README "Operations": SIGTERM,
// drain_secs, /ready). Runs only in load-balancer mode (`npm run test:lb`, HERALD_COMPAT_LB=1):
// three herald nodes on one redis-server behind haproxy, every node with drain_secs = 2.
//
// 30 pusher-js clients connect through haproxy (round robin: about 10 per node), each subscribed
// to the public channel `drain-room` and to `presence-drain` as its own user. An SDK loop publishes
// a numbered `tick` to drain-room through haproxy every 50 ms. Then the node holding a third of the
// clients gets SIGTERM. Checked:
//   - every client of that node gets pusher:error 4200, sees its connection go away and comes back
//     `connected` with a new socket_id on another node within 15 s; the other clients stay
//     connected throughout;
//   - every client is subscribed again (pusher-js resubscribes by itself) and, from its latest
//     drain-room subscription_succeeded on, misses no tick and gets none twice (ticks published
//     while it was away may be missing: delivery is at most once, as on hosted Pusher);
//   - the drained process exits with code 0 and haproxy takes it out of rotation (/ready 503);
//   - presence ends correct: GET /channels/presence-drain/users lists all 30 users, and every
//     client's pusher-js member list counts 30.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { LB, pollUntil, publishTicks, useHerald, watchRoomAndPresence, withDeadline } from './harness.mjs';

const SKIP = !LB && 'needs the load balancer: runs only under `npm run test:lb` (HERALD_COMPAT_LB=1)';
const ctx = LB ? useHerald() : null;

const N = 30;
const ROOM = 'drain-room';
const PRESENCE = 'presence-drain';
const RECONNECT_MS = 15000;
const TICK_MS = 50;

/** Subscribes `c` to drain-room and presence-drain as `drain-user-{i}`, recording what matters. */
function watch(c, i) {
  return { ...watchRoomAndPresence(c, ROOM, PRESENCE), user: `drain-user-${i}` };
}

/** Resolves once `rec` holds `n` subscription_succeeded entries; fails on a subscription_error. */
function subscribedTimes(rec, n, label, ms) {
  return rec.until(
    (items) => {
      const err = items.find((x) => x.event === 'error');
      if (err) throw new Error(`${label}: subscription_error ${JSON.stringify(err.e)}`);
      return items.length >= n;
    },
    label,
    ms,
  );
}

test(
  'SIGTERM drains one node under traffic: its clients reconnect through the LB, resubscribe, miss nothing after resubscribing',
  { skip: SKIP, timeout: 90000 },
  async () => {
    // -- 30 clients through haproxy, each on drain-room and presence-drain
    const watched = [];
    for (let i = 0; i < N; i++) {
      const c = ctx.client({ presence: { user_id: `drain-user-${i}`, user_info: { i } } });
      watched.push(watch(c, i));
    }
    await Promise.all(
      watched.map(async (t) => {
        await t.client.connected(10000);
        await subscribedTimes(t.roomSubs, 1, `${t.client.label} on ${ROOM}`, 10000);
        await subscribedTimes(t.presenceSubs, 1, `${t.client.label} on ${PRESENCE}`, 10000);
      }),
    );
    const perNode = ctx.servers.map((_, i) => watched.filter((t) => t.client.node === i).length);
    assert.equal(perNode.reduce((a, b) => a + b, 0), N, `every client knows its node: ${JSON.stringify(perNode)}`);
    // round robin puts a third of the clients on each node; drain the (first) fullest one
    const victim = perNode.indexOf(Math.max(...perNode));
    assert.ok(perNode[victim] >= N / 3, `the drained node holds a third of the clients: ${JSON.stringify(perNode)}`);
    const drained = watched.filter((t) => t.client.node === victim);
    const others = watched.filter((t) => t.client.node !== victim);
    const before = new Map(watched.map((t) => [t, { socketId: t.client.socketId, states: t.client.states.length }]));

    // -- the publisher: one numbered tick every 50 ms through haproxy, each awaited
    const sdk = ctx.sdk();
    const ticks = publishTicks(sdk, ROOM, TICK_MS);
    const { published } = ticks;

    try {
      // traffic is flowing and reaches the clients before the drain starts
      await pollUntil(
        () => ({ ok: published.filter((p) => p.ok).length >= 10, value: published.length }),
        '10 ticks published before the drain',
        5000,
      );
      const tenth = published.filter((p) => p.ok)[9].n;
      await Promise.all(watched.map((t) => t.ticks.until((ns) => ns.includes(tenth), `tick ${tenth}`)));

      // -- SIGTERM to the node holding a third of the clients
      const server = ctx.servers[victim];
      const exited = server.exited();
      const sigAt = Date.now();
      process.kill(server.pid, 'SIGTERM');

      // every drained client: disconnected, then connected again with a new socket id, elsewhere
      await Promise.all(
        drained.map((t) =>
          t.client.states.until(
            (s) => {
              const from = before.get(t).states;
              const away = s.findIndex((x, k) => k >= from && x !== 'connected');
              if (away < 0) return false;
              return s.slice(away + 1).includes('connected');
            },
            `disconnect and reconnect after SIGTERM to node${victim}`,
            RECONNECT_MS,
          ),
        ),
      );
      const reconnectMs = Date.now() - sigAt;
      for (const t of drained) {
        const c = t.client;
        assert.notEqual(c.socketId, before.get(t).socketId, `${c.label} has a new socket_id`);
        assert.notEqual(c.node, victim, `${c.label} reconnected to another node (nodes: ${JSON.stringify(c.nodes)})`);
        assert.ok(Number.isInteger(c.node), `${c.label} knows its new node`);
        // the node said why: pusher:error 4200 (reconnect at once)
        const codes = c.errors.items.map((e) => e && e.data && e.data.code);
        assert.ok(codes.includes(4200), `${c.label} got pusher:error 4200: ${JSON.stringify(c.errors.items)}`);
      }

      // pusher-js resubscribes by itself: drain-room and presence-drain succeed again
      await Promise.all(
        drained.map(async (t) => {
          await subscribedTimes(t.roomSubs, 2, `${t.client.label} resubscribed to ${ROOM}`, RECONNECT_MS);
          await subscribedTimes(t.presenceSubs, 2, `${t.client.label} resubscribed to ${PRESENCE}`, RECONNECT_MS);
        }),
      );

      // the drained node exits 0 (after drain_secs = 2) and haproxy takes it out of rotation
      const status = await withDeadline(exited, 15000, `node${victim} exits after SIGTERM`);
      assert.deepEqual(status, { code: 0, signal: null }, `node${victim} exit status; log:\n${server.logs().slice(-4000)}`);
      await pollUntil(
        async () => {
          const states = await ctx.lb.serverStates();
          return { ok: /^DOWN/.test(states[`node${victim}`] || ''), value: states };
        },
        `haproxy marks node${victim} DOWN`,
        5000,
      );

      // keep publishing until at least 20 ticks went out after the last client's resubscription
      const lastSub = Math.max(...watched.map((t) => t.roomSubs.items[t.roomSubs.length - 1].at));
      await pollUntil(
        () => ({ ok: published.filter((p) => p.ok && p.at > lastSub).length >= 20, value: published.length }),
        '20 ticks published after every client resubscribed',
        10000,
      );
      await ticks.stop();

      // -- no tick lost after each client's latest drain-room subscription_succeeded, none twice
      await Promise.all(
        watched.map((t) => {
          const since = t.roomSubs.items[t.roomSubs.length - 1].at;
          const required = published.filter((p) => p.ok && p.at > since).map((p) => p.n);
          assert.ok(required.length >= 20, `${t.client.label}: ticks published after its subscription`);
          return t.ticks.until(
            (ns) => required.every((n) => ns.includes(n)),
            `every tick published after ${ROOM} subscription_succeeded at ${since} ` +
              `(${required[0]}..${required[required.length - 1]})`,
          );
        }),
      );
      for (const t of watched) {
        const seen = new Set();
        const dups = t.ticks.items.filter((n) => (seen.has(n) ? true : (seen.add(n), false)));
        assert.deepEqual(dups, [], `${t.client.label} got no tick twice`);
      }

      // the clients of the other nodes never lost their connection
      for (const t of others) {
        const c = t.client;
        assert.equal(c.socketId, before.get(t).socketId, `${c.label} kept its socket`);
        assert.deepEqual(c.states.items.slice(before.get(t).states), [], `${c.label} had no state change`);
        assert.equal(t.roomSubs.length, 1, `${c.label} subscribed to ${ROOM} once`);
      }

      // -- presence ends with all 30 users, on the HTTP API (through haproxy) and in every client
      const want = watched.map((t) => t.user).sort();
      await pollUntil(
        async () => {
          const res = await sdk.get({ path: `/channels/${PRESENCE}/users` });
          const body = await res.json();
          const ids = (body.users || []).map((u) => u.id).sort();
          return { ok: JSON.stringify(ids) === JSON.stringify(want), value: ids };
        },
        `GET /channels/${PRESENCE}/users lists all ${N} users`,
        10000,
      );
      await pollUntil(
        () => {
          const counts = watched.map((t) => t.presence.members.count);
          return { ok: counts.every((n) => n === N), value: counts };
        },
        `every client's ${PRESENCE} member list counts ${N}`,
        10000,
      );
      const failed = published.filter((p) => !p.ok);
      console.log(
        `drained node${victim} (${drained.length} of ${N} clients, per node ${JSON.stringify(perNode)}): ` +
          `all reconnected within ${reconnectMs} ms; ${published.length} ticks published, ` +
          `${failed.length} failed${failed.length ? ` (${JSON.stringify(failed.slice(0, 5))})` : ''}`,
      );
    } finally {
      await ticks.stop();
    }
  },
);
