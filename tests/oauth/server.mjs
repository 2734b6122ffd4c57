// A real OAuth 2.0 authorization server for irisgate's connector tests (oauth2-mock-server),
// made strict where the tests need it:
// - /authorize requires PKCE with S256;
// - /token requires the client's credentials (HTTP Basic) and, for the code grant, a PKCE
//   verifier (the library checks it against the challenge); refresh tokens must be ones it
//   issued, and each works once (rotation);
// - access tokens are readable ("at-<grant>-<n>") so MCP test servers can check them;
// - a sign-in with scope "no-offline" gets no refresh token; with scope "short" its tokens
//   expire after one second (irisgate refreshes 30 s ahead: at once).
// Usage: node server.mjs CLIENT_ID CLIENT_SECRET EVENTS_FILE; prints {"issuer": URL} when ready.
import { appendFileSync } from "node:fs";
import { OAuth2Server } from "oauth2-mock-server";

const [clientId, clientSecret, eventsFile] = process.argv.slice(2);
const server = new OAuth2Server();
await server.issuer.keys.generate("RS256");
const scopes = new Map(); // authorization code or refresh token -> scope of the sign-in
let counter = 0;

function event(data) {
  appendFileSync(eventsFile, JSON.stringify(data) + "\n");
}

server.service.on("beforeAuthorizeRedirect", (redirect, req) => {
  const q = new URL(req.url, "http://localhost").searchParams;
  event({ event: "authorize", client_id: q.get("client_id"), scope: q.get("scope"),
          code_challenge_method: q.get("code_challenge_method"),
          redirect_uri: q.get("redirect_uri") });
  if (q.get("code_challenge_method") !== "S256" || !q.get("code_challenge")) {
    redirect.url.searchParams.delete("code");
    redirect.url.searchParams.set("error", "invalid_request");
    redirect.url.searchParams.set("error_description", "PKCE with S256 is required");
    return;
  }
  scopes.set(redirect.url.searchParams.get("code"), q.get("scope") || "");
});

server.service.on("beforeResponse", (response, req) => {
  const body = req.body;
  const grant = body.grant_type;
  const basic = (req.headers.authorization || "").replace(/^Basic /, "");
  const [id, secret] = Buffer.from(basic, "base64").toString().split(":").map(decodeURIComponent);
  const refuse = (status, error, description) => {
    response.statusCode = status;
    response.body = { error, error_description: description };
    event({ event: "token", grant_type: grant, refused: error });
  };
  if (id !== clientId || secret !== clientSecret) {
    return refuse(401, "invalid_client", "bad client credentials");
  }
  let scope = String(body.scope || "");
  if (grant === "authorization_code") {
    if (!body.code_verifier) return refuse(400, "invalid_grant", "PKCE verifier required");
    scope = scopes.get(body.code) ?? "";
  }
  if (grant === "refresh_token") {
    if (!scopes.has(body.refresh_token)) {
      return refuse(400, "invalid_grant", "unknown or used refresh token");
    }
    scope = scopes.get(body.refresh_token);
    scopes.delete(body.refresh_token);
  }
  counter += 1;
  response.body.access_token = `at-${grant}-${counter}`;
  if (scope.includes("short")) response.body.expires_in = 1;
  if (response.body.refresh_token) {
    if (scope.includes("no-offline")) delete response.body.refresh_token;
    else scopes.set(response.body.refresh_token, scope);
  }
  event({ event: "token", grant_type: grant, access_token: response.body.access_token,
          refresh_token: Boolean(response.body.refresh_token),
          code_verifier: Boolean(body.code_verifier), redirect_uri: body.redirect_uri || null });
});

await server.start(0, "127.0.0.1");
process.stdout.write(JSON.stringify({ issuer: server.issuer.url }) + "\n");
process.on("SIGTERM", async () => {
  await server.stop();
  process.exit(0);
});
