// Laravel Echo 2.x (npm `laravel-echo`, pinned in package.json) on top of the suite's pusher-js,
// pointed at Herald with both broadcasters that speak the Pusher protocol:
//   broadcaster: 'pusher'  — channel auth through pusher-js' `channelAuthorization.customHandler`
//   broadcaster: 'reverb'  — Echo forces `cluster: ''`; channel auth through the legacy `authorizer`
//                            option (pusher-js 8 still honours it)
// Echo receives the pusher-js constructor through its `Pusher` option (it never imports pusher-js
// itself: `options.client`, then `options.Pusher`, then `window.Pusher`). `withoutInterceptors`
// keeps it from looking for axios/jQuery/Vue/Turbo globals.
//
// Every test runs once per broadcaster and uses its own channel names. Each Echo instance's
// pusher-js connection is wrapped in the harness' Client (frames, states recorded; disconnected
// after the test). Signing is local, with the `pusher` SDK's authorizeChannel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Echo from 'laravel-echo';
import { APPS, Client, PusherJS, PusherSDK, Recorder, TEST_TIMEOUT, pollUntil, useHerald } from './harness.mjs';

const ctx = useHerald();

/** Signs channel auth locally (no requests), like a Laravel backend's /broadcasting/auth would. */
const signer = new PusherSDK({ appId: APPS.main.id, key: APPS.main.key, secret: APPS.main.secret });

/**
 * An Echo instance for `broadcaster` on the next node (round-robin in cluster mode).
 * `presence`: { user_id, user_info } returned as channel_data for presence- channels.
 * Returns { echo, client } where client wraps echo's pusher-js connection.
 */
function makeEcho(broadcaster, { presence = null } = {}) {
  const i = ctx.clientNode();
  const server = ctx.servers[i];
  const sign = (socketId, channelName) =>
    signer.authorizeChannel(socketId, channelName, channelName.startsWith('presence-') ? presence : undefined);
  const options = {
    broadcaster,
    key: APPS.main.key,
    wsHost: '127.0.0.1',
    wsPort: server.port,
    wssPort: server.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    Pusher: PusherJS,
    withoutInterceptors: true,
  };
  if (broadcaster === 'pusher') {
    options.cluster = 'mt1';
    options.channelAuthorization = {
      customHandler: ({ socketId, channelName }, cb) => {
        try {
          cb(null, sign(socketId, channelName));
        } catch (e) {
          cb(e, null);
        }
      },
    };
  } else {
    // Echo's documented (pre pusher-js 8) hook: authorizer(channel, options) => { authorize(socketId, cb) }
    options.authorizer = (channel) => ({
      authorize: (socketId, cb) => {
        try {
          cb(null, sign(socketId, channel.name));
        } catch (e) {
          cb(e, null);
        }
      },
    });
  }
  const echo = new Echo(options);
  const label = `echo-${broadcaster}#${++ctx.counter}${ctx.servers.length > 1 ? `@node${i}` : ''}`;
  const client = new Client(echo.connector.pusher, label, i);
  ctx.live.add(client);
  return { echo, client };
}

/** Resolves when Echo reports the channel subscribed; rejects on its subscription error. */
function subscribed(channel, label) {
  const rec = new Recorder(`${label} subscription`);
  channel.subscribed(() => rec.push({ ok: true })).error((e) => rec.push({ ok: false, e }));
  return rec.nth(1, `subscription of ${label}`).then((r) => {
    if (!r.ok) throw new Error(`${label}: subscription error ${JSON.stringify(r.e)}`);
  });
}

for (const broadcaster of ['pusher', 'reverb']) {
  const b = broadcaster;

  test(`${b}: Echo connects and socketId() is the connection's socket id`, { timeout: TEST_TIMEOUT }, async () => {
    const { echo, client } = makeEcho(b);
    const socketId = await client.connected();
    assert.match(echo.socketId(), /^\d+\.\d+$/);
    assert.equal(echo.socketId(), socketId);
    assert.equal(echo.connectionStatus(), 'connected');
    if (b === 'reverb') assert.equal(echo.connector.pusher.config.cluster, '');
  });

  test(`${b}: channel().listen() gets namespaced and '.'-prefixed events from the SDK`, { timeout: TEST_TIMEOUT }, async () => {
    const { echo, client } = makeEcho(b);
    await client.connected();
    const name = `echo-pub-${b}`;
    const shipped = new Recorder('OrderShipped');
    const raw = new Recorder('.raw-name');
    const ch = echo.channel(name);
    ch.listen('OrderShipped', (d) => shipped.push(d)).listen('.raw-name', (d) => raw.push(d));
    await subscribed(ch, name);

    const sdk = ctx.sdk();
    // not namespaced: Echo's 'OrderShipped' listener is bound to 'App\Events\OrderShipped' only
    await sdk.trigger(name, 'OrderShipped', { n: 0 });
    await sdk.trigger(name, 'App\\Events\\OrderShipped', { n: 1, order: { id: 42 } });
    await sdk.trigger(name, 'raw-name', { n: 2 });
    assert.deepEqual(await shipped.nth(1, 'App\\Events\\OrderShipped'), { n: 1, order: { id: 42 } });
    assert.deepEqual(await raw.nth(1, 'raw-name'), { n: 2 });
    // the frame on the wire carries the full event name, backslashes intact
    const frame = await client.waitEvent(name, 'App\\Events\\OrderShipped');
    assert.equal(frame.channel, name);
    assert.deepEqual(shipped.items, [{ n: 1, order: { id: 42 } }]);
    assert.equal(client.appFrames(name).length, 3);
  });

  test(`${b}: private() subscribes through the authorizer and listens`, { timeout: TEST_TIMEOUT }, async () => {
    const { echo, client } = makeEcho(b);
    await client.connected();
    const got = new Recorder('private');
    const ch = echo.private(`echo-priv-${b}`).listen('.secret', (d) => got.push(d));
    assert.equal(ch.name, `private-echo-priv-${b}`);
    await subscribed(ch, ch.name);
    await ctx.sdk().trigger(`private-echo-priv-${b}`, 'secret', { s: 'x' });
    assert.deepEqual(await got.nth(1, 'secret'), { s: 'x' });
  });

  test(`${b}: join() presence: here, joining, leaving`, { timeout: TEST_TIMEOUT }, async () => {
    const room = `echo-room-${b}`;
    const a = makeEcho(b, { presence: { user_id: 'u-a', user_info: { name: 'Ann' } } });
    const here = new Recorder('a.here');
    const joining = new Recorder('a.joining');
    const leaving = new Recorder('a.leaving');
    a.echo
      .join(room)
      .here((users) => here.push(users))
      .joining((u) => joining.push(u))
      .leaving((u) => leaving.push(u));
    assert.deepEqual(await here.nth(1, 'here of a'), [{ name: 'Ann' }]);

    const bb = makeEcho(b, { presence: { user_id: 'u-b', user_info: { name: 'Bob' } } });
    const hereB = new Recorder('b.here');
    bb.echo.join(room).here((users) => hereB.push(users));
    const usersB = await hereB.nth(1, 'here of b');
    assert.deepEqual(
      usersB.map((u) => u.name).sort(),
      ['Ann', 'Bob'],
    );
    assert.deepEqual(await joining.nth(1, 'joining Bob'), { name: 'Bob' });

    const info = await pollUntil(async () => {
      const res = await ctx.sdk().get({ path: `/channels/presence-${room}`, params: { info: 'user_count' } });
      const body = await res.json();
      return { ok: body.user_count === 2, value: body };
    }, 'user_count 2');
    assert.equal(info.occupied, true);

    bb.echo.leave(room);
    assert.deepEqual(await leaving.nth(1, 'leaving Bob'), { name: 'Bob' });
    assert.equal(joining.length, 1);
    assert.equal(bb.echo.connector.channels[`presence-${room}`], undefined);
  });

  test(`${b}: whisper / listenForWhisper (client events)`, { timeout: TEST_TIMEOUT }, async () => {
    const name = `echo-chat-${b}`;
    const a = makeEcho(b);
    const bb = makeEcho(b);
    const heardA = new Recorder('a.typing');
    const heardB = new Recorder('b.typing');
    const chA = a.echo.private(name).listenForWhisper('typing', (d) => heardA.push(d));
    const chB = bb.echo.private(name).listenForWhisper('typing', (d) => heardB.push(d));
    await Promise.all([subscribed(chA, 'a'), subscribed(chB, 'b')]);
    chB.whisper('typing', { who: 'b', typing: true });
    assert.deepEqual(await heardA.nth(1, 'whisper from b'), { who: 'b', typing: true });
    const frame = await a.client.waitEvent(`private-${name}`, 'client-typing');
    assert.equal(frame.user_id, undefined); // private channel: no user_id on client events
    // the sender does not get its own whisper: a's reply is the next thing b sees
    chA.whisper('typing', { who: 'a' });
    assert.deepEqual(await heardB.nth(1, 'whisper from a'), { who: 'a' });
    assert.deepEqual(heardB.items, [{ who: 'a' }]);
    assert.deepEqual(heardA.items, [{ who: 'b', typing: true }]);
  });

  test(`${b}: leave() unsubscribes; later events on that channel do not arrive`, { timeout: TEST_TIMEOUT }, async () => {
    const left = `echo-left-${b}`;
    const stay = `echo-stay-${b}`;
    const { echo, client } = makeEcho(b);
    const gotLeft = new Recorder('left');
    const gotStay = new Recorder('stay');
    const chL = echo.channel(left).listen('.ping', (d) => gotLeft.push(d));
    const chS = echo.channel(stay).listen('.ping', (d) => gotStay.push(d));
    await Promise.all([subscribed(chL, left), subscribed(chS, stay)]);
    const sdk = ctx.sdk();
    await sdk.trigger(left, 'ping', { before: true });
    await gotLeft.nth(1, 'ping before leave');

    echo.leave(left);
    assert.equal(echo.connector.channels[left], undefined);
    await pollUntil(async () => {
      const res = await sdk.get({ path: `/channels/${left}` });
      const body = await res.json();
      return { ok: body.occupied === false, value: body };
    }, `${left} vacated`);
    // same SDK (same node) for the event and the marker: the marker arrives after it would have
    await sdk.trigger(left, 'ping', { after: true });
    await sdk.trigger(stay, 'ping', { marker: true });
    assert.deepEqual(await gotStay.nth(1, 'marker'), { marker: true });
    assert.deepEqual(gotLeft.items, [{ before: true }]);
    assert.equal(client.appFrames(left).length, 1);
  });

  test(`${b}: Echo socketId() as socket_id excludes that client from an SDK trigger`, { timeout: TEST_TIMEOUT }, async () => {
    const name = `echo-excl-${b}`;
    const a = makeEcho(b);
    const bb = makeEcho(b);
    const gotA = new Recorder('a');
    const gotB = new Recorder('b');
    const chA = a.echo.channel(name).listen('.news', (d) => gotA.push(d));
    const chB = bb.echo.channel(name).listen('.news', (d) => gotB.push(d));
    await Promise.all([subscribed(chA, 'a'), subscribed(chB, 'b')]);
    // this is what Echo's interceptors put in X-Socket-ID and Laravel's toOthers() passes on
    const socketId = a.echo.socketId();
    assert.match(socketId, /^\d+\.\d+$/);

    const sdk = ctx.sdk();
    const res = await sdk.trigger(name, 'news', { toOthers: true }, { socket_id: socketId });
    assert.equal(res.status, 200);
    await sdk.trigger(name, 'news', { marker: true });
    assert.deepEqual(await gotB.nth(2, 'b: both events'), { marker: true });
    assert.deepEqual(gotB.items, [{ toOthers: true }, { marker: true }]);
    assert.deepEqual(await gotA.nth(1, 'a: marker'), { marker: true });
    assert.deepEqual(gotA.items, [{ marker: true }]);
  });
}
