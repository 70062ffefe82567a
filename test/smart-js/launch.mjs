// A SMART App Launch v2 standalone launch with the SMART on FHIR JavaScript
// client (npm fhirclient, its Node adapter) against Signpost's embedded
// development authorisation server, then a read of the patient's
// appointments. api/security_smartjs_test.go runs it:
//
//	node launch.mjs <FHIR base URL> <patient id to pick>
//
// The app is a tiny HTTP server on 127.0.0.1 (/launch starts the flow with
// fhirclient's authorize(), /callback finishes it with ready()). This
// script also plays the user's browser with plain fetch: it follows the
// redirects, reads the patient picker's form and submits it. It prints one
// JSON object on stdout: the launch context, the granted scope and the
// appointments read; anything going wrong exits non-zero with the reason on
// stderr.
import http from "node:http";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const smart = require("fhirclient/lib/entry/node");

const [iss, pick] = process.argv.slice(2);
if (!iss || !pick) {
  console.error("usage: node launch.mjs <FHIR base URL> <patient id>");
  process.exit(2);
}

// fhirclient keeps its state (PKCE verifier, state, tokens) in a storage
// object; one flow needs one in-memory store.
const session = new Map();
const storage = {
  get: async (key) => session.get(key),
  set: async (key, value) => { session.set(key, value); return value; },
  unset: async (key) => session.delete(key),
};

let redirectUri;
let result;
const app = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, redirectUri);
    if (url.pathname === "/launch") {
      await smart(req, res, storage).authorize({
        iss,
        clientId: "patient-app",
        scope: "openid fhirUser launch/patient patient/*.rs",
        redirectUri,
        pkceMode: "required",
      });
      return;
    }
    if (url.pathname === "/callback") {
      const client = await smart(req, res, storage).ready();
      const bundle = await client.request(`Appointment?patient=Patient/${client.patient.id}`);
      const refused = await client.request({ url: "Appointment/appt-a", method: "DELETE" })
        .then(() => 200, (err) => err.status ?? err.statusCode ?? 0);
      result = {
        patient: client.patient.id,
        scope: client.state.tokenResponse.scope,
        fhirUser: client.user.fhirUser ?? null,
        appointments: (bundle.entry ?? []).map((e) => e.resource),
        deleteStatus: refused,
      };
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify(result));
      return;
    }
    res.writeHead(404);
    res.end();
  } catch (err) {
    res.writeHead(500, { "Content-Type": "text/plain" });
    res.end(String(err && err.stack || err));
  }
});
await new Promise((ok) => app.listen(0, "127.0.0.1", ok));
redirectUri = `http://127.0.0.1:${app.address().port}/callback`;

// The browser: follow redirects by hand (fetch would follow them without
// letting us see the picker), submit the picker's form.
async function get(url, init = {}) {
  const resp = await fetch(url, { redirect: "manual", ...init });
  const body = await resp.text();
  if (resp.status >= 400) {
    throw new Error(`${init.method ?? "GET"} ${url}: ${resp.status}: ${body.slice(0, 500)}`);
  }
  return { status: resp.status, location: resp.headers.get("location"), body, url };
}

async function browse(start, init) {
  let page = await get(start, init);
  for (let hops = 0; page.location; hops++) {
    if (hops > 10) throw new Error(`too many redirects from ${start}`);
    page = await get(new URL(page.location, page.url).href);
  }
  return page;
}

try {
  // Launch: the app redirects to /authorize, which redirects to the picker.
  const picker = await browse(new URL("/launch", redirectUri).href);
  const form = picker.body.match(/<form[^>]*action="([^"]*)"/i);
  const hidden = [...picker.body.matchAll(/<input[^>]*type="hidden"[^>]*>/gi)].map((m) => m[0]);
  const offered = [...picker.body.matchAll(/name="patient"[^>]*value="([^"]+)"/gi)].map((m) => m[1]);
  if (!offered.includes(pick)) {
    throw new Error(`the patient picker does not offer ${pick} (offers ${offered.join(", ") || "nothing"}): ${picker.body.slice(0, 500)}`);
  }
  const fields = new URLSearchParams();
  for (const input of hidden) {
    const name = input.match(/name="([^"]*)"/i)?.[1];
    const value = input.match(/value="([^"]*)"/i)?.[1] ?? "";
    if (name) fields.set(name, value.replaceAll("&amp;", "&"));
  }
  fields.set("patient", pick);
  const action = new URL((form?.[1] ?? "").replaceAll("&amp;", "&"), picker.url).href;
  // Submitting the choice redirects back to the app's /callback, where
  // fhirclient exchanges the code (with the PKCE verifier) and reads.
  const done = await browse(action, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: fields.toString(),
  });
  if (!result) throw new Error(`the app did not complete the launch: ${done.body.slice(0, 500)}`);
  process.stdout.write(JSON.stringify(result) + "\n");
} catch (err) {
  console.error(String(err && err.stack || err));
  process.exitCode = 1;
} finally {
  app.close();
}
