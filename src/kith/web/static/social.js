// People: search, profiles, friend requests, friends, blocks; and notifications.
import { api } from "./api.js";
import { navigate, setUnread, state } from "./app.js";
import { actionButton, avatar, displayName, errorBox, field, h, loading, notice, replace, userLink, when } from "./ui.js";
import { pagedList, postCard, reportButton } from "./views.js";

export async function people(root, _params, query) {
  const results = h("section", { "aria-label": "Search results", class: "results" });
  const search = h("form", { role: "search", class: "search" },
    field("Find people by username or name", { name: "q", type: "search", value: query.get("q") || "", maxlength: 50 }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Search")));
  search.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = new FormData(search).get("q").trim();
    history.replaceState(null, "", q ? `/people?q=${encodeURIComponent(q)}` : "/people");
    show(q, 1);
  });
  async function show(q, page) {
    replace(results, loading("Searching…"));
    try {
      const found = await api("GET", "users", { query: { q, page, page_size: 20 } });
      const items = found.items.filter((user) => user.id !== state.me.id);
      replace(results,
        h("p", { role: "status" }, q ? `${found.total} found for “${q}”.` : `${found.total} people on Kith.`),
        h("ul", { class: "people" }, items.map((user) => h("li", {}, userLink(user)))),
        found.total_pages > 1 ? h("nav", { class: "pager", "aria-label": "Result pages" },
          page > 1 ? h("button", { type: "button", onclick: () => show(q, page - 1) }, "Previous page") : null,
          h("span", {}, ` Page ${page} of ${found.total_pages} `),
          page < found.total_pages ? h("button", { type: "button", onclick: () => show(q, page + 1) }, "Next page") : null) : null);
    } catch (error) {
      replace(results, errorBox(error, () => show(q, page)));
    }
  }
  replace(root, h("h1", {}, "People"), search, results);
  await show(query.get("q") || "", 1);
}

async function findRequest(direction, otherId) {
  let cursor = null;
  do {
    const page = await api("GET", "friend-requests", { query: { direction, status: "pending", limit: 100, cursor } });
    const found = page.items.find((request) => (direction === "outgoing" ? request.receiver.id : request.sender.id) === otherId);
    if (found) return found;
    cursor = page.next_cursor;
  } while (cursor);
  return null;
}

export async function profile(root, params) {
  replace(root, loading("Loading the profile…"));
  const user = await api("GET", `users/${encodeURIComponent(params.id)}`);
  const relation = h("div", { class: "relation" });
  const reload = () => profile(root, params);
  const buttons = [];
  switch (user.relationship) {
    case "self":
      buttons.push(h("a", { href: "/settings", class: "button" }, "Edit your profile"));
      break;
    case "none":
      buttons.push(actionButton("Add friend", async () => {
        const request = await api("POST", "friend-requests", { body: { receiver_id: user.id }, headers: { "Idempotency-Key": crypto.randomUUID() } });
        notice(request.status === "accepted" ? `You and ${displayName(user)} are now friends.` : "Friend request sent.", "success");
        reload();
      }, { class: "primary" }));
      break;
    case "request_sent":
      buttons.push(h("span", {}, "Friend request sent. "), actionButton("Cancel request", async () => {
        const request = await findRequest("outgoing", user.id);
        if (request) await api("DELETE", `friend-requests/${request.id}`);
        notice("Request cancelled.");
        reload();
      }));
      break;
    case "request_received":
      buttons.push(h("span", {}, `${displayName(user)} wants to be your friend. `),
        actionButton("Accept", async () => {
          const request = await findRequest("incoming", user.id);
          if (request) await api("PATCH", `friend-requests/${request.id}`, { body: { action: "accept" } });
          reload();
        }, { class: "primary" }),
        actionButton("Reject", async () => {
          const request = await findRequest("incoming", user.id);
          if (request) await api("PATCH", `friend-requests/${request.id}`, { body: { action: "reject" } });
          reload();
        }));
      break;
    case "friends":
      buttons.push(h("span", {}, "Friends. "), actionButton("Unfriend", async () => {
        if (!window.confirm(`Remove ${displayName(user)} from your friends?`)) return;
        await api("DELETE", `friends/${user.id}`);
        reload();
      }));
      break;
    default:
      break;
  }
  if (user.relationship !== "self") {
    buttons.push(actionButton("Block", async () => {
      if (!window.confirm(`Block ${displayName(user)}? Neither of you will see the other.`)) return;
      await api("POST", "blocks", { body: { user_id: user.id }, headers: { "Idempotency-Key": crypto.randomUUID() } });
      notice(`${displayName(user)} is blocked. You can unblock them in Settings.`);
      navigate("/people");
    }, { class: "danger" }), reportButton("user", user.id));
  }
  replace(relation, buttons);
  const posts = h("section", { "aria-label": `Posts by ${displayName(user)}` });
  replace(root,
    h("section", { class: "profile" }, avatar(user, "large"),
      h("div", {}, h("h1", {}, displayName(user)), h("p", { class: "handle" }, `@${user.username}`),
        user.bio ? h("p", { class: "bio", dir: "auto" }, user.bio) : null,
        h("p", { class: "meta" }, `${user.friend_count} friend${user.friend_count === 1 ? "" : "s"} · ${user.post_count} post${user.post_count === 1 ? "" : "s"} · joined `, when(user.created_at)))),
    relation, h("h2", {}, "Posts"), posts);
  await pagedList(posts, (cursor) => api("GET", `users/${user.id}/posts`, { query: { cursor, limit: 15 } }), (post) => postCard(post), { empty: "No posts to show." }).next();
}

function requestItem(request, direction, refresh) {
  const other = direction === "incoming" ? request.sender : request.receiver;
  const item = h("li", { class: "request" }, userLink(other), " ", when(request.created_at), " ");
  if (direction === "incoming") {
    item.append(actionButton(`Accept ${displayName(other)}`, async () => {
      await api("PATCH", `friend-requests/${request.id}`, { body: { action: "accept" } });
      notice(`You and ${displayName(other)} are now friends.`, "success");
      refresh();
    }, { class: "primary" }), " ", actionButton(`Reject ${displayName(other)}`, async () => {
      await api("PATCH", `friend-requests/${request.id}`, { body: { action: "reject" } });
      refresh();
    }));
  } else {
    item.append(actionButton(`Cancel request to ${displayName(other)}`, async () => {
      await api("DELETE", `friend-requests/${request.id}`);
      refresh();
    }));
  }
  return item;
}

export async function friends(root) {
  const incoming = h("section", { "aria-labelledby": "incoming-heading" });
  const outgoing = h("section", { "aria-labelledby": "outgoing-heading" });
  const list = h("section", { "aria-labelledby": "friends-heading" });
  replace(root, h("h1", {}, "Friends"), incoming, outgoing, list);
  const refresh = () => friends(root);
  async function requests(section, direction, title) {
    replace(section, h("h2", { id: `${direction}-heading` }, title), loading());
    try {
      const page = await api("GET", "friend-requests", { query: { direction, status: "pending", limit: 100 } });
      replace(section, h("h2", { id: `${direction}-heading` }, title),
        page.items.length ? h("ul", { class: "people" }, page.items.map((request) => requestItem(request, direction, refresh))) : h("p", { class: "empty" }, "None."));
    } catch (error) { section.append(errorBox(error, refresh)); }
  }
  await Promise.all([
    requests(incoming, "incoming", "Friend requests for you"),
    requests(outgoing, "outgoing", "Requests you sent"),
    (async () => {
      const holder = h("div", {});
      replace(list, h("h2", { id: "friends-heading" }, "Your friends"), holder);
      await pagedList(holder, (cursor) => api("GET", `users/${state.me.id}/friends`, { query: { cursor, limit: 50 } }), (friend) =>
        h("div", { class: "friend" }, userLink(friend), " friends since ", when(friend.friends_since), " ", actionButton(`Unfriend ${displayName(friend)}`, async (button) => {
          if (!window.confirm(`Remove ${displayName(friend)} from your friends?`)) return;
          await api("DELETE", `friends/${friend.id}`);
          button.closest(".friend").remove();
        })), { empty: "No friends yet: find people under People." }).next();
    })(),
  ]);
}

const NOTIFICATION_WORDS = {
  friend_request: "sent you a friend request",
  friend_accepted: "accepted your friend request",
  post_liked: "liked your post",
  post_commented: "commented on your post",
};

export function notificationText(notification) {
  return `${displayName(notification.actor)} ${NOTIFICATION_WORDS[notification.type] || notification.type}.`;
}

function notificationItem(notification) {
  const target = notification.post_id ? `/posts/${notification.post_id}` : notification.type === "friend_request" ? "/friends" : `/users/${notification.actor.id}`;
  // Opening a notification marks it read (in the background: the link is followed at once).
  const open = () => {
    if (notification.read) return;
    notification.read = true;
    api("POST", "notifications/read", { body: { ids: [notification.id] } }).catch(() => { notification.read = false; });
  };
  return h("li", { class: `notification${notification.read ? "" : " unread"}`, dataset: { id: notification.id } },
    avatar(notification.actor),
    h("a", { href: target, onclick: open }, notificationText(notification)), " ",
    when(notification.created_at),
    notification.read ? null : h("span", { class: "sr-only" }, " (unread)"));
}

export async function notifications(root) {
  const holder = h("div", {});
  const markAll = actionButton("Mark all read", async () => {
    await api("POST", "notifications/read", { body: { all: true } });
    for (const item of holder.querySelectorAll(".notification.unread")) { item.classList.remove("unread"); item.querySelector(".sr-only")?.remove(); }
    setUnread(0);
    notice("All notifications marked read.");
  });
  replace(root, h("div", { class: "title-row" }, h("h1", {}, "Notifications"), markAll), holder);
  const listing = pagedList(holder, (cursor) => api("GET", "notifications", { query: { cursor, limit: 20 } }),
    notificationItem, { empty: "No notifications yet.", listTag: "ul" });
  const ul = listing.list;
  ul.classList.add("notifications");
  const live = (notification) => {
    if (!root.isConnected) { state.notificationListeners.delete(live); return; }
    if (!ul.querySelector(`[data-id="${CSS.escape(notification.id)}"]`)) ul.prepend(notificationItem(notification));
    holder.querySelector(".empty")?.remove();
  };
  state.notificationListeners.add(live);
  await listing.next();
}
