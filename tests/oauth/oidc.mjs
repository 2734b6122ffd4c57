// A real OpenID provider for irisgate's sign-in tests (oauth2-mock-server, pinned in
// package-lock.json beside this file): discovery, JWKS (RS256), the authorization code flow
// with PKCE and nonce, ID tokens. Made strict where the tests need it: /authorize requires
// PKCE with S256, /token the client's credentials (HTTP Basic).
// Who signs in, and how the provider misbehaves, is read from CONTROL_FILE (JSON) at each
// token request: {"email", "name", "groups", "mode"}, mode one of
//   ok | wrong-aud | wrong-iss | expired | wrong-nonce | tampered
// ("tampered" changes the signed ID token's payload after signing, keeping its signature).
// SIGUSR2 adds a signing key (see below).
// Usage: node oidc.mjs CLIENT_ID CLIENT_SECRET CONTROL_FILE; prints {"issuer": URL} when ready.
import { readFileSync } from "node:fs";
import { OAuth2Server } from "oauth2-mock-server";

const [clientId, clientSecret, controlFile] = process.argv.slice(2);
const server = new OAuth2Server();
await server.issuer.keys.generate("RS256");

function control() {
  return JSON.parse(readFileSync(controlFile, "utf8"));
}

server.service.on("beforeAuthorizeRedirect", (redirect, req) => {
  const q = new URL(req.url, "http://localhost").searchParams;
  if (q.get("code_challenge_method") !== "S256" || !q.get("code_challenge") || !q.get("nonce")) {
    redirect.url.searchParams.delete("code");
    redirect.url.searchParams.set("error", "invalid_request");
    redirect.url.searchParams.set("error_description", "PKCE with S256 and a nonce are required");
  }
});

server.service.on("beforeTokenSigning", (token) => {
  const c = control();
  const now = Math.floor(Date.now() / 1000);
  Object.assign(token.payload, { email: c.email, name: c.name, groups: c.groups });
  if (c.mode === "wrong-aud") token.payload.aud = "someone-else";
  if (c.mode === "wrong-iss") token.payload.iss = "https://impostor.example";
  if (c.mode === "wrong-nonce") token.payload.nonce = "not-the-one-sent";
  if (c.mode === "expired") Object.assign(token.payload, { iat: now - 7200, exp: now - 3600 });
});

server.service.on("beforeResponse", (response, req) => {
  const basic = (req.headers.authorization || "").replace(/^Basic /, "");
  const [id, secret] = Buffer.from(basic, "base64").toString().split(":").map(decodeURIComponent);
  if (id !== clientId || secret !== clientSecret) {
    response.statusCode = 401;
    response.body = { error: "invalid_client", error_description: "bad client credentials" };
    return;
  }
  const c = control();
  if (c.mode === "tampered" && response.body.id_token) {
    const [header, payload, signature] = response.body.id_token.split(".");
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
    claims.email = c.tampered_email;
    const forged = Buffer.from(JSON.stringify(claims)).toString("base64url");
    response.body.id_token = [header, forged, signature].join(".");
  }
});

// SIGUSR2: the provider rotates its keys (a new signing key, published in its JWKS; the
// library signs with its keys in turn); it prints {"rotated": KID} when done.
process.on("SIGUSR2", async () => {
  const key = await server.issuer.keys.generate("RS256");
  process.stdout.write(JSON.stringify({ rotated: key.kid }) + "\n");
});

await server.start(0, "127.0.0.1");
server.issuer.url = `http://127.0.0.1:${server.address().port}`;
process.stdout.write(JSON.stringify({ issuer: server.issuer.url }) + "\n");
process.on("SIGTERM", async () => {
  await server.stop();
  process.exit(0);
});
