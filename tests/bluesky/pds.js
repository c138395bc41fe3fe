// The reference Bluesky PDS for the tests: @atproto/dev-env (npm, installed
// by .ci/run under target/pds) starts a PLC and a PDS on free local ports.
// This script creates one account and an app password, prints them as one
// JSON line, and runs until its standard input closes.
//
// With the argument `appview` it starts the whole network instead: the PDS,
// the reference AppView (Bluesky's `bsky`, which indexes the PDS's
// firehose into PostgreSQL and answers notifications, search and post
// views) and its moderation service. It then also creates a second
// account, `fan.test` (its password printed), whose posts mention, answer
// and quote the first; the AppView's schemas are dropped on exit. It needs
// PostgreSQL (MARKETER_BSKY_POSTGRES_URL, else the local server's
// `postgres` database) and Redis (REDIS_HOST, else 127.0.0.1:6379).
//
// Usage: NODE_PATH=target/pds/node_modules node tests/bluesky/pds.js [appview]
"use strict";

const { TestNetwork, TestNetworkNoAppView } = require("@atproto/dev-env");

const withAppView = process.argv[2] === "appview";

(async () => {
  const postgres = process.env.MARKETER_BSKY_POSTGRES_URL || "postgres://postgres@127.0.0.1:5432/postgres";
  // Schema names may hold letters and underscores only.
  const schema = "marketer_" + Array.from({ length: 12 }, () => "abcdefghijklmnopqrstuvwxyz"[Math.floor(Math.random() * 26)]).join("");
  process.env.REDIS_HOST = process.env.REDIS_HOST || "127.0.0.1:6379";
  const network = withAppView
    ? await TestNetwork.create({ dbPostgresUrl: postgres, dbPostgresSchema: schema })
    : await TestNetworkNoAppView.create({});
  const agent = network.pds.getClient();
  const handle = "marketer.test";
  await agent.createAccount({ email: "marketer@example.com", handle, password: "account-password-1" });
  const app = await agent.com.atproto.server.createAppPassword({ name: "marketer" });
  const info = { url: network.pds.url, handle, did: agent.session.did, app_password: app.data.password };
  if (withAppView) {
    const fan = network.pds.getClient();
    await fan.createAccount({ email: "fan@example.com", handle: "fan.test", password: "fan-password-1" });
    info.appview = network.bsky.url;
    info.fan = { handle: "fan.test", did: fan.session.did, password: "fan-password-1" };
  }
  process.stdout.write(JSON.stringify(info) + "\n");
  const stop = async () => {
    await network.close().catch(() => {});
    if (withAppView) {
      const { Client } = require("pg");
      const client = new Client({ connectionString: postgres });
      await client.connect().catch(() => {});
      for (const name of [`appview_${schema}`, `ozone_${schema}`]) {
        await client.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`).catch(() => {});
      }
      await client.end().catch(() => {});
    }
    process.exit(0);
  };
  process.stdin.on("end", stop);
  process.stdin.on("close", stop);
  process.stdin.resume();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
