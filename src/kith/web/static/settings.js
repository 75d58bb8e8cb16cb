// Settings (profile, sessions, authorized apps, API keys, password, blocks, account) and the staff views.
import { api, forget } from "./api.js";
import { navigate, state } from "./app.js";
import { actionButton, avatar, displayName, errorBox, field, form, h, loading, notice, replace, userLink, when } from "./ui.js";
import { pagedList } from "./views.js";

function section(title, id, ...children) {
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), children);
}

function profileSection() {
  const me = state.me;
  const picture = h("div", { class: "avatar-row" }, avatar(me, "large"));
  const avatarField = field("New profile picture", { name: "avatar", type: "file", accept: "image/jpeg,image/png,image/gif,image/webp" });
  const node = form([
    field("Display name", { name: "display_name", value: me.display_name, maxlength: 50, autocomplete: "name" }),
    field("Bio", { tag: "textarea", name: "bio", value: me.bio, maxlength: 500, rows: 3 }),
    picture, avatarField,
  ], "Save profile", async () => {
    const values = new FormData(node);
    const body = { display_name: values.get("display_name").trim(), bio: values.get("bio").trim() };
    const file = avatarField.querySelector("input").files[0];
    if (file) {
      const data = new FormData();
      data.append("file", file);
      body.avatar_media_id = (await api("POST", "media", { form: data, headers: { "Idempotency-Key": crypto.randomUUID() } })).id;
    }
    state.me = await api("PATCH", "users/me", { body });
    replace(picture, avatar(state.me, "large"));
    avatarField.querySelector("input").value = "";
    notice("Profile saved.", "success");
  }, { "aria-label": "Profile" });
  const extra = [];
  if (me.avatar_url) {
    extra.push(actionButton("Remove profile picture", async () => {
      state.me = await api("PATCH", "users/me", { body: { avatar_media_id: null } });
      replace(picture, avatar(state.me, "large"));
    }));
  }
  return section("Profile", "profile-heading", h("p", {}, "Signed in as ", userLink(me), ` (${me.email}${me.email_verified ? ", confirmed" : ", not confirmed yet"})`),
    me.email_verified ? null : actionButton("Send the confirmation e-mail again", async () => {
      await api("POST", "auth/verify-email/resend");
      notice("A new confirmation e-mail is on its way.", "success");
    }), node, extra);
}

function sessionsSection() {
  const body = h("div", {}, loading());
  async function show() {
    try {
      const found = await api("GET", "users/me/sessions");
      replace(body, h("ul", { class: "sessions" }, found.items.map((item) => h("li", {},
        h("span", {}, item.user_agent || "Unknown browser or app"), " · signed in ", when(item.created_at),
        item.current ? h("strong", {}, " · this browser") : [" ", actionButton("Log out this session", async () => {
          await api("DELETE", `users/me/sessions/${item.id}`);
          notice("That session is logged out.");
          show();
        })]))),
      actionButton("Log out everywhere", async () => {
        if (!window.confirm("Log out of every browser and app, this one included?")) return;
        await api("POST", "auth/logout-all");
        forget();
      }));
    } catch (error) { replace(body, errorBox(error, show)); }
  }
  show();
  return section("Where you are signed in", "sessions-heading", body);
}

// Mastodon apps the user signed in to through /oauth/authorize (docs/mastodon.md).
function appsSection() {
  const body = h("div", {}, loading());
  async function show() {
    try {
      const found = await api("GET", "users/me/authorizations");
      replace(body, found.items.length ? h("ul", { class: "keys" }, found.items.map((item) => h("li", {},
        h("strong", {}, item.app.name), ` (${item.scopes.join(", ")}) · authorized `, when(item.created_at),
        item.last_used_at ? [" · last used ", when(item.last_used_at)] : " · never used", " ",
        actionButton(`Revoke ${item.app.name}`, async () => {
          await api("DELETE", `users/me/authorizations/${item.id}`);
          notice(`${item.app.name} can no longer use your account.`);
          show();
        }, { class: "danger" })))) : h("p", { class: "empty" }, "No apps."));
    } catch (error) { replace(body, errorBox(error, show)); }
  }
  show();
  return section("Authorized apps", "apps-heading",
    h("p", {}, "Mastodon apps you let use your account. Changing your password revokes them all."), body);
}

function apiKeysSection() {
  const list = h("div", {});
  const created = h("div", { role: "status" });
  const node = form([
    field("Key name", { name: "name", required: true, maxlength: 100 }, "For example the script that will use it."),
    field("Access", { tag: "select", name: "access", value: "read", options: [["read", "Read only"], ["write", "Read and write"]] }),
  ], "Create API key", async (values, formNode) => {
    const scopes = values.access === "write" ? ["read", "write"] : ["read"];
    const key = await api("POST", "users/me/api-keys", { body: { name: values.name.trim(), scopes }, headers: { "Idempotency-Key": crypto.randomUUID() } });
    formNode.reset();
    replace(created, h("div", { class: "secret" }, h("p", {}, "Your new key. Copy it now: it will not be shown again."),
      h("label", { for: "new-api-key" }, "New API key"), h("input", { id: "new-api-key", readonly: true, value: key.key })));
    show();
  }, { "aria-label": "Create an API key" });
  async function show() {
    replace(list, loading());
    try {
      const page = await api("GET", "users/me/api-keys", { query: { limit: 100 } });
      replace(list, page.items.length ? h("ul", { class: "keys" }, page.items.map((key) => h("li", {},
        h("strong", {}, key.name), ` ${key.prefix}… (${key.scopes.join(", ")}) · made `, when(key.created_at),
        key.last_used_at ? [" · last used ", when(key.last_used_at)] : " · never used", " ",
        actionButton(`Revoke ${key.name}`, async () => {
          await api("DELETE", `users/me/api-keys/${key.id}`);
          notice("API key revoked.");
          show();
        }, { class: "danger" })))) : h("p", { class: "empty" }, "No API keys."));
    } catch (error) { replace(list, errorBox(error, show)); }
  }
  show();
  return section("API keys", "keys-heading", h("p", {}, "Keys let your own scripts use Kith's API as you."), list, node, created);
}

function passwordSection() {
  return section("Change password", "password-heading", form([
    field("Current password", { name: "current_password", type: "password", autocomplete: "current-password", required: true }),
    field("New password", { name: "new_password", type: "password", autocomplete: "new-password", required: true, minlength: 8 }, "Other browsers will be logged out; API keys and authorized apps are revoked."),
  ], "Change password", async (values, node) => {
    await api("POST", "users/me/password", { body: values });
    node.reset();
    notice("Password changed.", "success");
  }, { "aria-label": "Change password" }));
}

function blocksSection() {
  const holder = h("div", {});
  const show = () => pagedList(holder, (cursor) => api("GET", "blocks", { query: { cursor, limit: 50 } }), (block) => h("div", { class: "friend" },
    userLink(block.user), " blocked ", when(block.created_at), " ",
    actionButton(`Unblock ${displayName(block.user)}`, async () => {
      await api("DELETE", `blocks/${block.user.id}`);
      notice(`${displayName(block.user)} is unblocked.`);
      show();
    })), { empty: "You have blocked nobody." }).next();
  show();
  return section("Blocked people", "blocks-heading", holder);
}

const EXPORT_STATUS = { queued: "Waiting to start", running: "Being built", ready: "Ready", failed: "Failed", expired: "Expired" };
const EXPORT_ERRORS = { too_large: "it was larger than this server allows", interrupted: "the server stopped while building it" };

function exportItem(item, highlighted) {
  // Past its expiry an archive is gone, though the hourly clean-up has not marked it yet.
  if (item.status === "ready" && Date.parse(item.expires_at) <= Date.now()) item = { ...item, status: "expired" };
  const status = h("span", { class: "export-status" }, EXPORT_STATUS[item.status] || item.status);
  const parts = [h("strong", {}, "Archive asked for "), when(item.created_at), " · ", status];
  if (item.status === "queued" || item.status === "running") {
    parts.push(" ", h("progress", { max: 100, value: item.progress, "aria-label": `Archive progress, ${item.progress} %` }), ` ${item.progress} %`);
  } else if (item.status === "ready") {
    const size = item.size >= 1048576 ? `${(item.size / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(item.size / 1024))} KB`;
    parts.push(` · ${size}, until `, when(item.expires_at), " ",
      actionButton("Download the archive", async () => {
        // A single-use link: the browser downloads it without the access token.
        const link = await api("POST", `users/me/exports/${item.id}/links`);
        location.assign(link.url);
      }, { class: "primary" }));
  } else if (item.status === "failed") {
    parts.push(` (${EXPORT_ERRORS[item.error] || "something went wrong"}). You can ask again.`);
  }
  return h("li", { class: highlighted ? "export highlighted" : "export", "data-export": item.id }, parts);
}

function exportSection(query) {
  const list = h("div", {});
  const wanted = query && query.get("export");
  async function show() {
    try {
      const page = await api("GET", "users/me/exports", { query: { limit: 10 } });
      replace(list, page.items.length ? h("ul", { class: "exports" }, page.items.map((item) => exportItem(item, item.id === wanted)))
        : h("p", { class: "empty" }, "You have not asked for an archive yet."));
    } catch (error) { replace(list, errorBox(error, show)); }
  }
  // Progress arrives on the live stream while this page is open.
  const live = () => {
    if (!list.isConnected) { state.exportListeners.delete(live); return; }
    show();
  };
  state.exportListeners.add(live);
  replace(list, loading());
  show();
  return section("Export your data", "export-heading",
    h("p", {}, "Get an archive of your profile, posts, comments, likes, friends, blocks, notifications and pictures: JSON files and your images in one zip, with a page to open in a browser. It is built in the background; we e-mail you when it is ready. You can ask once a day, and each archive can be downloaded for 7 days."),
    actionButton("Ask for an archive", async () => {
      await api("POST", "users/me/exports", { headers: { "Idempotency-Key": crypto.randomUUID() } });
      notice("Your archive is being built. We will e-mail you when it is ready.", "success");
      show();
    }), list);
}

function deleteSection() {
  return section("Delete your account", "delete-heading",
    h("p", {}, "This deletes your account and everything you wrote, liked and sent. It cannot be undone."),
    form([field("Your password", { name: "password", type: "password", autocomplete: "current-password", required: true })], "Delete my account", async (values) => {
      if (!window.confirm("Delete your account for good?")) return;
      await api("DELETE", "users/me", { body: { password: values.password } });
      forget();
      notice("Your account is deleted.");
      navigate("/signup", { replace: true });
    }, { "aria-label": "Delete your account", class: "danger-zone" }));
}

export async function settings(root, params, query) {
  replace(root, h("h1", {}, "Settings"), profileSection(), sessionsSection(), appsSection(), apiKeysSection(), passwordSection(), blocksSection(), exportSection(query), deleteSection());
}

function staffOnly(root, roles) {
  if (roles.includes(state.me.role)) return true;
  replace(root, h("h1", {}, "Not available"), h("p", {}, "This page is for moderators and administrators."));
  return false;
}

function reportItem(report, refresh) {
  const target = report.target;
  const link = target ? (report.target_type === "post" ? `/posts/${report.target_id}` : report.target_type === "comment" ? `/posts/${target.post_id}` : `/users/${report.target_id}`) : null;
  return h("li", { class: "card report" },
    h("p", {}, h("strong", {}, `${report.target_type} reported`), " by ", userLink(report.reporter), " ", when(report.created_at)),
    h("p", {}, "Reason: ", h("q", {}, report.reason)),
    target ? h("p", {}, "Content by ", userLink(target.author), ": ", h("q", {}, target.excerpt || "(no text)"), " ", h("a", { href: link }, "Open")) : h("p", {}, "The content no longer exists."),
    h("div", { class: "post-actions" },
      actionButton("Dismiss", async () => { await api("PATCH", `moderation/reports/${report.id}`, { body: { action: "dismiss" } }); refresh(); }),
      actionButton(report.target_type === "user" ? "Suspend the user" : "Remove the content", async () => {
        if (!window.confirm(report.target_type === "user" ? "Suspend the reported user?" : "Remove the reported content?")) return;
        await api("PATCH", `moderation/reports/${report.id}`, { body: { action: "remove_content" } });
        notice("Content removed.");
        refresh();
      }, { class: "danger" })));
}

export async function moderation(root) {
  if (!staffOnly(root, ["moderator", "admin"])) return;
  const holder = h("div", {});
  replace(root, h("h1", {}, "Reports"), holder);
  await pagedList(holder, (cursor) => api("GET", "moderation/reports", { query: { status: "open", cursor, limit: 20 } }), (report) => reportItem(report, () => moderation(root)),
    { empty: "No open reports.", listTag: "ul" }).next();
}

export async function admin(root) {
  if (!staffOnly(root, ["admin"])) return;
  const users = h("div", {});
  const audit = h("div", {});
  const search = h("form", { role: "search", class: "search" }, field("Find accounts", { name: "q", type: "search", maxlength: 50 }), h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Search")));
  async function showUsers(q) {
    replace(users, loading());
    try {
      const page = await api("GET", "admin/users", { query: { q, page: 1, page_size: 50 } });
      replace(users, h("p", { role: "status" }, `${page.total} accounts.`), h("ul", { class: "people" }, page.items.map((user) => h("li", {},
        userLink(user), ` ${user.role}${user.suspended ? " · suspended" : ""} `,
        user.id === state.me.id ? null : actionButton(user.suspended ? `Lift suspension of ${user.username}` : `Suspend ${user.username}`, async () => {
          await api("PATCH", `admin/users/${user.id}`, { body: { suspended: !user.suspended } });
          notice(user.suspended ? "Suspension lifted." : "Account suspended.");
          showUsers(q);
        }, { class: user.suspended ? "" : "danger" })))));
    } catch (error) { replace(users, errorBox(error, () => showUsers(q))); }
  }
  search.addEventListener("submit", (event) => { event.preventDefault(); showUsers(new FormData(search).get("q").trim()); });
  replace(root, h("h1", {}, "Administration"), section("Accounts", "accounts-heading", search, users), section("Audit log", "audit-heading", audit));
  showUsers("");
  await pagedList(audit, (cursor) => api("GET", "admin/audit-log", { query: { cursor, limit: 50 } }), (entry) =>
    h("li", {}, h("strong", {}, entry.actor_username), ` ${entry.action.replace(/[._]/g, " ")} (${entry.target_type} ${entry.target_id}) `, when(entry.created_at)),
    { empty: "Nothing recorded yet.", listTag: "ul" }).next();
}
