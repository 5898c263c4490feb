// taxlink console: the WebAuthn glue for enrolment, sign-in and
// re-authentication. Served by the console itself; no third-party script.
"use strict";

function b64urlToBuf(s) {
  s = s.replace(/-/g, "+").replace(/_/g, "/");
  while (s.length % 4) s += "=";
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

function bufToB64url(buf) {
  const bytes = new Uint8Array(buf);
  let bin = "";
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function post(path, body) {
  const r = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  let data = {};
  try { data = await r.json(); } catch (e) { data = { error: "HTTP " + r.status }; }
  if (!r.ok) throw new Error(data.error || ("HTTP " + r.status));
  return data;
}

async function enrol(form, say) {
  const opts = await post("/webauthn/enrol/begin", {
    operator: form.querySelector("#operator").value,
    code: form.querySelector("#code").value.trim(),
  });
  const pk = opts.publicKey;
  pk.challenge = b64urlToBuf(pk.challenge);
  pk.user.id = b64urlToBuf(pk.user.id);
  (pk.excludeCredentials || []).forEach(c => { c.id = b64urlToBuf(c.id); });
  const cred = await navigator.credentials.create({ publicKey: pk });
  const res = await post("/webauthn/enrol/finish", {
    id: cred.id, rawId: bufToB64url(cred.rawId), type: cred.type,
    response: {
      clientDataJSON: bufToB64url(cred.response.clientDataJSON),
      attestationObject: bufToB64url(cred.response.attestationObject),
      transports: cred.response.getTransports ? cred.response.getTransports() : [],
    },
  });
  return res.next;
}

async function login(form, say) {
  const opts = await post("/webauthn/login/begin", { operator: form.querySelector("#operator").value });
  const pk = opts.publicKey;
  pk.challenge = b64urlToBuf(pk.challenge);
  (pk.allowCredentials || []).forEach(c => { c.id = b64urlToBuf(c.id); });
  let cred;
  try {
    cred = await navigator.credentials.get({ publicKey: pk });
  } catch (e) {
    // The authenticator did not verify the user or was cancelled: the
    // server counts it as a failed attempt.
    await post("/webauthn/login/abort", { reason: (e && e.name) || "Error" });
    throw e;
  }
  const res = await post("/webauthn/login/finish", {
    id: cred.id, rawId: bufToB64url(cred.rawId), type: cred.type,
    response: {
      clientDataJSON: bufToB64url(cred.response.clientDataJSON),
      authenticatorData: bufToB64url(cred.response.authenticatorData),
      signature: bufToB64url(cred.response.signature),
      userHandle: cred.response.userHandle ? bufToB64url(cred.response.userHandle) : "",
    },
  });
  return form.dataset.mode === "reauth" ? form.dataset.next : res.next;
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("webauthn-form");
  if (!form) return;
  const say = t => { document.getElementById("message").textContent = t; };
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    say("");
    form.classList.add("busy");
    try {
      const next = form.dataset.mode === "enrol" ? await enrol(form, say) : await login(form, say);
      window.location.assign(next && next.charAt(0) === "/" && next.charAt(1) !== "/" ? next : "/");
    } catch (e) {
      say(e.message || String(e));
    } finally {
      form.classList.remove("busy");
    }
  });
});
