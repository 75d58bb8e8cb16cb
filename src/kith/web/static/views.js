// Signing in and out, the e-mail links, the news feed and a post with its comments.
import { api, logIn } from "./api.js";
import { navigate, startSession, state } from "./app.js";
import { actionButton, avatar, confirmAction, displayName, errorBox, field, form, h, loading, notice, replace, userLink, when } from "./ui.js";

// --- signing in ----------------------------------------------------------------------------

function safeNext(query) {
  const next = query.get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

export async function login(root, _params, query) {
  replace(root,
    h("h1", {}, "Log in to Kith"),
    form([
      field("Username or e-mail", { name: "identifier", autocomplete: "username", required: true }),
      field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true }),
    ], "Log in", async (values) => {
      await logIn(values.identifier.trim(), values.password);
      await startSession();
      navigate(safeNext(query), { replace: true });
    }, { "aria-label": "Log in" }),
    h("p", {}, h("a", { href: "/forgot-password" }, "Forgot your password?")),
    h("p", {}, "New here? ", h("a", { href: "/signup" }, "Create an account")));
}

export async function signup(root) {
  replace(root,
    h("h1", {}, "Create your Kith account"),
    form([
      field("Username", { name: "username", autocomplete: "username", required: true, minlength: 3, maxlength: 30 }, "3–30 letters, digits or underscores."),
      field("Display name", { name: "display_name", autocomplete: "name", maxlength: 50 }, "Optional: how your friends see you."),
      field("E-mail", { name: "email", type: "email", autocomplete: "email", required: true }),
      field("Password", { name: "password", type: "password", autocomplete: "new-password", required: true, minlength: 8 }, "At least 8 characters; not a common password."),
    ], "Sign up", async (values) => {
      const body = { username: values.username.trim(), email: values.email.trim(), password: values.password };
      if (values.display_name.trim()) body.display_name = values.display_name.trim();
      await api("POST", "auth/register", { body, auth: false, headers: { "Idempotency-Key": crypto.randomUUID() } });
      await logIn(body.username, body.password);
      await startSession();
      notice("Welcome to Kith! We sent you an e-mail to confirm your address.");
      navigate("/", { replace: true });
    }, { "aria-label": "Sign up" }),
    h("p", {}, "Already have an account? ", h("a", { href: "/login" }, "Log in")));
}

export async function forgotPassword(root) {
  const done = h("div", { role: "status" });
  replace(root,
    h("h1", {}, "Reset your password"),
    h("p", {}, "Enter your account's e-mail address and we will send you a link to choose a new password."),
    form([field("E-mail", { name: "email", type: "email", autocomplete: "email", required: true })], "Send the link", async (values, node) => {
      await api("POST", "auth/password-reset", { body: { email: values.email.trim() }, auth: false });
      node.reset();
      replace(done, h("p", { class: "success" }, "If an account has this address, an e-mail with a link is on its way. The link works for one hour."));
    }, { "aria-label": "Reset your password" }),
    done);
}

/** Opened from the link in a reset e-mail: the token comes from the address, then leaves it. */
export async function resetPassword(root, _params, query) {
  const token = query.get("token") || "";
  history.replaceState(null, "", "/reset-password");
  if (!token) {
    replace(root, h("h1", {}, "Reset your password"), h("p", {}, "This page needs the link from the e-mail. ", h("a", { href: "/forgot-password" }, "Ask for a new link")));
    return;
  }
  replace(root,
    h("h1", {}, "Choose a new password"),
    form([field("New password", { name: "new_password", type: "password", autocomplete: "new-password", required: true, minlength: 8 }, "At least 8 characters; not a common password.")],
      "Set the password", async (values) => {
        await api("POST", "auth/password-reset/confirm", { body: { token, new_password: values.new_password }, auth: false });
        notice("Your password was changed. Log in with the new one.", "success");
        navigate("/login", { replace: true });
      }, { "aria-label": "Password reset" }));
}

/** Opened from the link in a verification e-mail: confirms the address at once. */
export async function verifyEmail(root, _params, query) {
  const token = query.get("token") || "";
  history.replaceState(null, "", "/verify-email");
  replace(root, h("h1", {}, "Confirming your e-mail address"), loading("Confirming…"));
  try {
    if (!token) throw Object.assign(new Error("no token"), { status: 400, problem: { detail: "This page needs the link from the e-mail." } });
    await api("POST", "auth/verify-email", { body: { token }, auth: false });
    if (state.me) state.me.email_verified = true;
    replace(root, h("h1", {}, "E-mail address confirmed"), h("p", { class: "success", role: "status" }, "Thank you: your e-mail address is confirmed."), h("p", {}, h("a", { href: "/" }, "Go to your feed")));
  } catch (error) {
    replace(root, h("h1", {}, "The link did not work"), errorBox(error, () => verifyEmail(root, _params, new URLSearchParams({ token }))),
      h("p", {}, "Links work once and for seven days. You can ask for a new one in ", h("a", { href: "/settings" }, "Settings"), "."));
  }
}

// --- posts ------------------------------------------------------------------------------------

const VISIBILITY = [["friends", "Friends"], ["public", "Everyone on Kith"], ["private", "Only me"]];
const VISIBILITY_WORDS = Object.fromEntries(VISIBILITY);

/** A list that loads page after page as its end scrolls into view (or its button is pressed). */
export function pagedList(container, load, renderItem, { empty = "Nothing here yet.", label = "Load more", listTag = "div" } = {}) {
  let cursor = null;
  let finished = false;
  let busy = false;
  const list = h(listTag, { class: "items" });
  const status = h("div", { class: "list-status" });
  const more = h("button", { type: "button", class: "more", hidden: true }, label);
  replace(container, list, status, more);
  const observer = new IntersectionObserver((entries) => { if (entries.some((entry) => entry.isIntersecting)) next(); }, { rootMargin: "600px" });
  async function next() {
    if (busy || finished || (!container.isConnected && list.childElementCount)) return;
    busy = true;
    more.hidden = true;
    replace(status, loading());
    try {
      const page = await load(cursor);
      for (const item of page.items) list.append(renderItem(item));
      cursor = page.next_cursor;
      finished = !cursor;
      replace(status, finished && !list.childElementCount ? h("p", { class: "empty" }, empty) : null);
      if (finished) observer.disconnect(); else { more.hidden = false; observer.observe(more); }
    } catch (error) {
      replace(status, errorBox(error, () => { busy = false; next(); }));
    } finally {
      busy = false;
    }
  }
  more.addEventListener("click", next);
  return { next, list, prepend(node) { list.prepend(node); status.replaceChildren(); } };
}

export function postCard(post, { onDeleted, full = false } = {}) {
  const card = h("article", { class: "post", "aria-labelledby": `post-${post.id}-by`, dataset: { postId: post.id } });
  const mine = state.me && state.me.id === post.author.id;
  const staff = state.me && (state.me.role === "moderator" || state.me.role === "admin");
  const content = h("div", { class: "content" });
  function showContent() {
    replace(content, post.content ? h("p", { class: "text", dir: "auto" }, post.content) : null,
      post.media.length ? h("div", { class: "media" }, post.media.map((item) =>
        h("img", { src: item.url, alt: `Image shared by ${displayName(post.author)}`, width: item.width, height: item.height, loading: "lazy" }))) : null);
  }
  showContent();
  const likeButton = h("button", { type: "button", class: "like", "aria-pressed": String(post.liked_by_me) });
  const likeWords = () => { likeButton.textContent = `${post.liked_by_me ? "Unlike" : "Like"} (${post.like_count})`; };
  likeWords();
  likeButton.addEventListener("click", async () => {
    likeButton.disabled = true;
    try {
      const result = post.liked_by_me ? await api("DELETE", `posts/${post.id}/like`).then(() => ({ liked_by_me: false, like_count: Math.max(0, post.like_count - 1) })) : await api("POST", `posts/${post.id}/like`);
      post.liked_by_me = result.liked_by_me;
      post.like_count = result.like_count;
      likeButton.setAttribute("aria-pressed", String(post.liked_by_me));
      likeWords();
    } catch (error) { notice(errorText(error), "error"); } finally { likeButton.disabled = false; }
  });
  const actions = h("div", { class: "post-actions" }, likeButton,
    full ? h("span", { class: "count" }, `${post.comment_count} comment${post.comment_count === 1 ? "" : "s"}`) : h("a", { href: `/posts/${post.id}` }, `Comments (${post.comment_count})`));
  if (mine) {
    actions.append(h("button", { type: "button", onclick: () => editPost(post, content, showContent) }, "Edit"));
  }
  if (mine || staff) {
    actions.append(actionButton("Delete", async () => {
      if (!confirmAction("Delete this post?")) return;
      await api("DELETE", `posts/${post.id}`);
      notice("Post deleted.");
      card.remove();
      if (onDeleted) onDeleted();
    }, { class: "danger" }));
  }
  if (!mine) actions.append(reportButton("post", post.id));
  card.append(
    h("header", {}, h("span", { id: `post-${post.id}-by` }, userLink(post.author)), " ",
      h("a", { href: `/posts/${post.id}`, class: "permalink" }, when(post.created_at)),
      post.edited_at ? h("span", { class: "edited" }, " · edited") : null,
      h("span", { class: "visibility" }, ` · ${VISIBILITY_WORDS[post.visibility] || post.visibility}`)),
    content, actions);
  return card;
}

function errorText(error) { return error.problem?.detail || error.message || "Something went wrong."; }

function editPost(post, content, showContent) {
  const editor = form([
    field("Post text", { tag: "textarea", name: "content", value: post.content, maxlength: 5000, rows: 4 }),
    field("Who can see it", { tag: "select", name: "visibility", value: post.visibility, options: VISIBILITY }),
  ], "Save", async (values) => {
    const updated = await api("PATCH", `posts/${post.id}`, { body: { content: values.content, visibility: values.visibility } });
    Object.assign(post, updated);
    showContent();
  }, { "aria-label": "Edit post", class: "inline-editor" });
  editor.querySelector(".actions").append(h("button", { type: "button", onclick: showContent }, "Cancel"));
  replace(content, editor);
  editor.querySelector("textarea").focus();
}

export function reportButton(targetType, targetId) {
  return h("button", { type: "button", class: "quiet", onclick: (event) => {
    const holder = event.currentTarget.closest("article, section, li") || document.getElementById("main");
    if (holder.querySelector(".report-form")) return;
    const reportForm = form([field("Why are you reporting this?", { tag: "textarea", name: "reason", required: true, maxlength: 1000, rows: 2 })], "Send report", async (values) => {
      await api("POST", "reports", { body: { target_type: targetType, target_id: targetId, reason: values.reason }, headers: { "Idempotency-Key": crypto.randomUUID() } });
      reportForm.remove();
      notice("Thank you: the moderators will look at it.", "success");
    }, { class: "report-form", "aria-label": "Report" });
    holder.append(reportForm);
    reportForm.querySelector("textarea").focus();
  } }, "Report");
}

const MAX_IMAGES = 4;

function composer(onPosted) {
  const preview = h("div", { class: "preview" });
  const fileField = field("Images (optional)", { name: "file", type: "file", multiple: true, accept: "image/jpeg,image/png,image/gif,image/webp" }, `Up to ${MAX_IMAGES}: JPEG, PNG, GIF or WebP, 10 MB each.`);
  const fileInput = fileField.querySelector("input");
  // A retry after a failure must not upload or post twice: uploads are remembered by file,
  // and the post's Idempotency-Key changes only when the post itself does.
  let uploaded = new Map();
  let postKey = crypto.randomUUID();
  fileInput.addEventListener("change", () => {
    replace(preview, [...fileInput.files].slice(0, MAX_IMAGES).map((file, index) =>
      h("img", { src: URL.createObjectURL(file), alt: `Preview of image ${index + 1}: ${file.name}` })));
  });
  const node = form([
    field("What's on your mind?", { tag: "textarea", name: "content", maxlength: 5000, rows: 3 }),
    fileField, preview,
    field("Who can see it", { tag: "select", name: "visibility", value: "friends", options: VISIBILITY }),
  ], "Post", async (values, formNode) => {
    const files = [...fileInput.files];
    if (files.length > MAX_IMAGES) {
      throw Object.assign(new Error("too many"), { status: 422, problem: {}, fieldErrors: () => [{ field: "body.file", message: `Choose at most ${MAX_IMAGES} images.` }] });
    }
    const body = { content: values.content.trim(), visibility: values.visibility };
    const ids = [];
    for (const file of files) {
      if (!uploaded.has(file)) {
        const data = new FormData();
        data.append("file", file);
        uploaded.set(file, (await api("POST", "media", { form: data, headers: { "Idempotency-Key": crypto.randomUUID() } })).id);
      }
      ids.push(uploaded.get(file));
    }
    if (ids.length) body.media_ids = ids;
    const post = await api("POST", "posts", { body, headers: { "Idempotency-Key": postKey } });
    formNode.reset();
    replace(preview);
    uploaded = new Map();
    postKey = crypto.randomUUID();
    onPosted(post);
    notice("Posted.", "success");
  }, { class: "composer", "aria-label": "New post" });
  node.addEventListener("input", () => { postKey = crypto.randomUUID(); });
  return node;
}

export async function feed(root) {
  const items = h("section", { "aria-label": "News feed", class: "feed" });
  const list = pagedList(items, (cursor) => api("GET", "feed", { query: { cursor, limit: 15 } }), (post) => postCard(post),
    { empty: "Your feed is empty. Write a post, or find friends under People." });
  replace(root, h("h1", {}, "News feed"), composer((post) => list.prepend(postCard(post))), items);
  await list.next();
}

export async function postPage(root, params) {
  replace(root, loading("Loading the post…"));
  const post = await api("GET", `posts/${encodeURIComponent(params.id)}`);
  const comments = h("section", { class: "comments", "aria-labelledby": "comments-heading" });
  replace(root, h("h1", { class: "sr-only" }, `Post by ${displayName(post.author)}`),
    postCard(post, { full: true, onDeleted: () => navigate("/", { replace: true }) }),
    comments);
  const list = h("div", {});
  const listing = pagedList(list, (cursor) => api("GET", `posts/${post.id}/comments`, { query: { cursor, limit: 50 } }), (comment) => commentItem(comment, post),
    { empty: "No comments yet.", label: "More comments" });
  replace(comments, h("h2", { id: "comments-heading" }, "Comments"), list,
    form([field("Write a comment", { tag: "textarea", name: "content", required: true, maxlength: 2000, rows: 2 })], "Comment", async (values, node) => {
      const comment = await api("POST", `posts/${post.id}/comments`, { body: { content: values.content }, headers: { "Idempotency-Key": crypto.randomUUID() } });
      listing.list.append(commentItem(comment, post));
      listing.list.parentElement.querySelector(".empty")?.remove();
      node.reset();
    }, { "aria-label": "New comment", class: "comment-form" }));
  await listing.next();
}

function commentItem(comment, post) {
  const mine = state.me && state.me.id === comment.author.id;
  const staff = state.me && (state.me.role === "moderator" || state.me.role === "admin");
  const text = h("p", { class: "text", dir: "auto" }, comment.content);
  const body = h("div", { class: "comment-body" }, text);
  const item = h("article", { class: "comment", dataset: { commentId: comment.id } },
    h("header", {}, userLink(comment.author), " ", when(comment.created_at), comment.edited_at ? h("span", { class: "edited" }, " · edited") : null), body);
  const actions = h("div", { class: "post-actions" });
  if (mine) {
    actions.append(h("button", { type: "button", onclick: () => {
      const editor = form([field("Comment text", { tag: "textarea", name: "content", value: comment.content, maxlength: 2000, rows: 2 })], "Save", async (values) => {
        Object.assign(comment, await api("PATCH", `comments/${comment.id}`, { body: { content: values.content } }));
        text.textContent = comment.content;
        replace(body, text);
      }, { "aria-label": "Edit comment" });
      editor.querySelector(".actions").append(h("button", { type: "button", onclick: () => replace(body, text) }, "Cancel"));
      replace(body, editor);
      editor.querySelector("textarea").focus();
    } }, "Edit"));
  }
  if (mine || staff || (state.me && state.me.id === post.author.id)) {
    actions.append(actionButton("Delete", async () => {
      if (!confirmAction("Delete this comment?")) return;
      await api("DELETE", `comments/${comment.id}`);
      item.remove();
    }, { class: "danger" }));
  }
  if (!mine) actions.append(reportButton("comment", comment.id));
  item.append(actions);
  return item;
}

export { avatar };
