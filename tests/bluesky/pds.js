// The reference Bluesky PDS for the tests: @atproto/dev-env (npm, installed
// by .ci/run under target/pds) starts a PLC and a PDS on free local ports.
// This script creates one account and an app password, prints them as one
// JSON line, and runs until its standard input closes.
//
// Usage: NODE_PATH=target/pds/node_modules node tests/bluesky/pds.js
"use strict";

const { TestNetworkNoAppView } = require("@atproto/dev-env");

(async () => {
  const network = await TestNetworkNoAppView.create({});
  const agent = network.pds.getClient();
  const handle = "marketer.test";
  await agent.createAccount({ email: "marketer@example.com", handle, password: "account-password-1" });
  const app = await agent.com.atproto.server.createAppPassword({ name: "marketer" });
  process.stdout.write(
    JSON.stringify({ url: network.pds.url, handle, did: agent.session.did, app_password: app.data.password }) + "\n",
  );
  const stop = async () => {
    await network.close().catch(() => {});
    process.exit(0);
  };
  process.stdin.on("end", stop);
  process.stdin.on("close", stop);
  process.stdin.resume();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
