// zonegate: the security key prompt of the sign-in pages.
//
// The page carries the WebAuthn options the server made in
// <script type="application/json" id="zg-webauthn" data-mode="get|create|passkey">, and a form
// #zg-webauthn-form with a hidden "credential" field. This script runs the browser's WebAuthn
// call with those options and posts the form with the browser's answer as JSON; the server
// checks it (go-webauthn). Nothing here parses or checks WebAuthn data: it only converts
// between base64url strings and the byte buffers the browser API takes.
(function () {
  "use strict";
  var data = document.getElementById("zg-webauthn");
  var form = document.getElementById("zg-webauthn-form");
  if (!data || !form) {
    return;
  }
  var mode = data.getAttribute("data-mode");
  var options = JSON.parse(data.textContent).publicKey;
  var field = form.querySelector("input[name=credential]");
  var button = document.getElementById("zg-webauthn-start");
  var status = document.getElementById("zg-webauthn-status");
  var busy = false;
  var conditional = null;

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  if (!window.PublicKeyCredential || !navigator.credentials) {
    say("This browser cannot use security keys or passkeys.");
    if (button) {
      button.disabled = true;
    }
    return;
  }

  function fromB64u(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) {
      s += "=";
    }
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out.buffer;
  }

  function toB64u(buf) {
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) {
      bin += String.fromCharCode(bytes[i]);
    }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(o) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(o);
    }
    var c = Object.assign({}, o);
    c.challenge = fromB64u(o.challenge);
    c.user = Object.assign({}, o.user, { id: fromB64u(o.user.id) });
    c.excludeCredentials = (o.excludeCredentials || []).map(function (d) {
      return Object.assign({}, d, { id: fromB64u(d.id) });
    });
    return c;
  }

  function requestOptions(o) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(o);
    }
    var c = Object.assign({}, o);
    c.challenge = fromB64u(o.challenge);
    c.allowCredentials = (o.allowCredentials || []).map(function (d) {
      return Object.assign({}, d, { id: fromB64u(d.id) });
    });
    return c;
  }

  function encode(cred) {
    if (typeof cred.toJSON === "function") {
      return cred.toJSON();
    }
    var r = cred.response;
    var out = {
      id: cred.id,
      rawId: toB64u(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: toB64u(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = toB64u(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = toB64u(r.authenticatorData);
      out.response.signature = toB64u(r.signature);
      if (r.userHandle) {
        out.response.userHandle = toB64u(r.userHandle);
      }
    }
    return out;
  }

  function submit(cred) {
    field.value = JSON.stringify(encode(cred));
    say("Checking\u2026");
    form.submit();
  }

  function failed(err) {
    busy = false;
    if (button) {
      button.disabled = false;
    }
    if (err && err.name === "AbortError") {
      return;
    }
    if (err && err.name === "NotAllowedError") {
      say("The prompt was closed or timed out. Try again.");
    } else if (err && err.name === "InvalidStateError") {
      say("This key is already set up for your account. Use another key.");
    } else {
      say("That did not work: " + (err && err.message ? err.message : "unknown error") + ".");
    }
  }

  function run() {
    if (busy) {
      return;
    }
    busy = true;
    if (button) {
      button.disabled = true;
    }
    if (conditional) {
      conditional.abort();
      conditional = null;
    }
    say(mode === "create" ? "Follow your browser\u2019s prompt to set up the key\u2026" : "Follow your browser\u2019s prompt\u2026");
    var p = mode === "create"
      ? navigator.credentials.create({ publicKey: creationOptions(options) })
      : navigator.credentials.get({ publicKey: requestOptions(options) });
    p.then(function (cred) {
      if (!cred) {
        throw new Error("no credential");
      }
      submit(cred);
    }).catch(failed);
  }

  // Passkey autofill: offer the account's passkeys in the username field's suggestions.
  function autofill() {
    if (!PublicKeyCredential.isConditionalMediationAvailable) {
      return;
    }
    PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
      if (!ok || busy) {
        return;
      }
      conditional = new AbortController();
      navigator.credentials.get({ publicKey: requestOptions(options), mediation: "conditional", signal: conditional.signal })
        .then(function (cred) {
          if (cred) {
            busy = true;
            submit(cred);
          }
        })
        .catch(function () {});
    });
  }

  if (button) {
    button.addEventListener("click", run);
  }
  if (mode === "passkey") {
    autofill();
  } else if (data.getAttribute("data-auto") === "true") {
    run();
  }
})();
