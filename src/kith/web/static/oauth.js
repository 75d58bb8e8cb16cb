// Kith's authorization page for Mastodon apps (/oauth/authorize, docs/mastodon.md): when this
// browser is signed in to the web client, approve as that user without typing the password
// again. The web client's refresh cookie gives an access token (rotated as the client itself
// rotates it, one tab at a time), which the form sends instead of a login and password.
// Without a session, or without scripts, the form asks for the login and password.
import { api, currentToken, refresh } from "./api.js";

const form = document.getElementById("authorize");
if (form && form.dataset.webSession === "yes") {
  try {
    if (await refresh()) {
      const me = await api("GET", "users/me");
      document.getElementById("session-token").value = currentToken();
      const note = document.getElementById("signed-in");
      note.textContent = `Signed in as @${me.username}. Not you? Sign out of Kith first.`;
      note.hidden = false;
      document.getElementById("login-fields").hidden = true;
    }
  } catch {
    // Not signed in, or the server cannot tell: the form asks for the password.
  }
}
