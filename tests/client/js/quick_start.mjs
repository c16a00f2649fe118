// The README's quick start of the feed client, as a script: sign in, connect, and print the feed
// once it is loaded and live, then close.
//
// usage: node quick_start.mjs URL EMAIL PASSWORD   (prints one JSON line; exits 0)

import { connect, login } from "@crm-notifications/feed-client";

const [url, email, password] = process.argv.slice(2);
setTimeout(() => process.exit(2), 20_000).unref(); // never hang a test

// As in the README, but printing once, when the feed is loaded and live.
const { token } = await login({ url, email, password });
const store = connect({ url, token });
store.subscribe(({ items, unreadCount, connection, loaded }) => {
  if (!loaded || connection !== "live") return;
  console.log(JSON.stringify({ unreadCount, messages: items.map((n) => n.message) }));
  store.close();
});
store.onTokenExpired(() => null);
