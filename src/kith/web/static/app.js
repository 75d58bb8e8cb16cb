// The web client's shell: addresses and views, the navigation, the live notification stream.
import { API, api, currentToken, logOut, onSignedOut, refresh, resume, signedIn } from "./api.js";
import { describe, errorBox, h, loading, notice, replace } from "./ui.js";
import * as views from "./views.js";
import * as social from "./social.js";
import * as settings from "./settings.js";

export const state = { me: null, unread: 0, stream: null, notificationListeners: new Set(), exportListeners: new Set() };

const ROUTES = [
  ["/", views.feed, true],
  ["/login", views.login, false],
  ["/signup", views.signup, false],
  ["/forgot-password", views.forgotPassword, false],
  ["/reset-password", views.resetPassword, false],
  ["/verify-email", views.verifyEmail, false],
  ["/posts/:id", views.postPage, true],
  ["/users/:id", social.profile, true],
  ["/people", social.people, true],
  ["/friends", social.friends, true],
  ["/notifications", social.notifications, true],
  ["/settings", settings.settings, true],
  ["/moderation", settings.moderation, true],
  ["/admin", settings.admin, true],
];

function match(path) {
  for (const [pattern, view, needsLogin] of ROUTES) {
    const names = [];
    const regex = new RegExp(`^${pattern.replace(/:(\w+)/g, (_, name) => { names.push(name); return "([^/]+)"; })}$`);
    const found = regex.exec(path);
    if (found) return { view, needsLogin, params: Object.fromEntries(names.map((name, i) => [name, decodeURIComponent(found[i + 1])])) };
  }
  return null;
}

export function navigate(url, { replace: replacing = false } = {}) {
  if (replacing) history.replaceState(null, "", url); else history.pushState(null, "", url);
  render();
}

let renderCount = 0;

/** Render the view the address names into <main>; a view that fails shows why, never a blank page. */
export async function render() {
  const main = document.getElementById("main");
  const count = ++renderCount;
  const path = location.pathname;
  const found = match(path);
  renderNav();
  if (!found) {
    replace(main, h("h1", {}, "Page not found"), h("p", {}, "There is nothing at this address. ", h("a", { href: "/" }, "Go to your feed")));
    return;
  }
  if (found.needsLogin && !signedIn()) {
    navigate(`/login?next=${encodeURIComponent(path + location.search)}`, { replace: true });
    return;
  }
  const root = h("div", { class: "view" });
  replace(main, root);
  const query = new URLSearchParams(location.search);
  try {
    await found.view(root, found.params, query);
  } catch (error) {
    if (count !== renderCount) return;
    console.error(error);
    const heading = error.status === 404 ? "Not found" : "Something went wrong";
    replace(root, h("h1", {}, heading), errorBox(error, () => render()), h("p", {}, h("a", { href: "/" }, "Go to your feed")));
  }
  if (count === renderCount && !performance.getEntriesByName("kith:interactive").length) {
    performance.mark("kith:interactive");
  }
  if (count === renderCount && document.activeElement === document.body) {
    const heading = root.querySelector("h1");
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
  }
}

function renderNav() {
  const nav = document.getElementById("nav");
  const here = location.pathname;
  const link = (href, text, extra) => h("a", { href, "aria-current": here === href ? "page" : null }, text, extra);
  if (!signedIn() || !state.me) {
    replace(nav, h("ul", {}, h("li", {}, link("/login", "Log in")), h("li", {}, link("/signup", "Sign up"))));
    return;
  }
  const badge = h("span", { class: "badge", id: "unread-badge", "aria-hidden": "true", hidden: state.unread === 0 }, String(state.unread));
  const staff = state.me.role === "moderator" || state.me.role === "admin";
  replace(nav, h("ul", {},
    h("li", {}, link("/", "Feed")),
    h("li", {}, link("/people", "People")),
    h("li", {}, link("/friends", "Friends")),
    h("li", {}, link("/notifications", "Notifications", [" ", badge, h("span", { class: "sr-only", id: "unread-words" }, state.unread ? `(${state.unread} unread)` : "")])),
    h("li", {}, link("/settings", "Settings")),
    staff ? h("li", {}, link("/moderation", "Reports")) : null,
    state.me.role === "admin" ? h("li", {}, link("/admin", "Admin")) : null,
    h("li", {}, h("button", { type: "button", class: "link", onclick: async () => { await logOut(); notice("You are logged out."); } }, "Log out")),
  ));
}

export function setUnread(count) {
  state.unread = count;
  const badge = document.getElementById("unread-badge");
  if (badge) { badge.textContent = String(count); badge.hidden = count === 0; }
  const words = document.getElementById("unread-words");
  if (words) words.textContent = count ? `(${count} unread)` : "";
  document.title = count ? `(${count}) Kith` : "Kith";
}

/** After logging in (or resuming): who am I, the unread count, the live stream. */
export async function startSession() {
  const [me, unread] = await Promise.all([api("GET", "users/me"), api("GET", "notifications/unread-count")]);
  state.me = me;
  setUnread(unread.count);
  openStream();
}

// --- the live stream: notifications and the unread count, reconnecting after a loss --------

let retryDelay = 1000;
let retryTimer = null;

function openStream() {
  closeStream();
  if (!signedIn()) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}${API}/stream`);
  state.stream = socket;
  document.body.dataset.stream = "connecting";
  socket.addEventListener("open", () => socket.send(JSON.stringify({ type: "auth", token: currentToken() })));
  socket.addEventListener("message", (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    if (message.event === "unread_count") {
      document.body.dataset.stream = "live";
      retryDelay = 1000;
      setUnread(message.data.count);
    } else if (message.event === "notification") {
      state.notificationListeners.forEach((listener) => listener(message.data));
      notice(social.notificationText(message.data));
    } else if (message.event === "export") {
      state.exportListeners.forEach((listener) => listener(message.data));
    }
  });
  socket.addEventListener("close", async (event) => {
    if (state.stream !== socket) return;
    state.stream = null;
    document.body.dataset.stream = "offline";
    if (!signedIn()) return;
    if (event.code === 4401) {
      // The access token expired or the session ended: a refresh tells which.
      try { if (!(await refresh())) return; } catch { /* offline: retry below */ }
    }
    retryTimer = setTimeout(openStream, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 30000);
  });
}

function closeStream() {
  clearTimeout(retryTimer);
  const socket = state.stream;
  state.stream = null;
  if (socket) socket.close(1000);
}

window.addEventListener("online", () => { if (signedIn() && !state.stream) { retryDelay = 1000; openStream(); } });

onSignedOut(() => {
  closeStream();
  state.me = null;
  setUnread(0);
  if (match(location.pathname)?.needsLogin) navigate("/login", { replace: true }); else renderNav();
});

// --- links and start-up -------------------------------------------------------------------

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || link.target || !match(url.pathname)) return;
  if (url.hash && url.pathname === location.pathname) return; // an anchor on this page (the skip link)
  event.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", () => render());

async function boot() {
  const main = document.getElementById("main");
  replace(main, loading("Loading Kith…"));
  try {
    if (await resume()) await startSession();
  } catch (error) {
    replace(main, h("h1", {}, "Kith cannot start"), errorBox(error, () => boot()));
    return;
  }
  document.body.dataset.ready = "true";
  await render();
}

export { describe };
boot();
