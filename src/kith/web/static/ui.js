// DOM helpers. User text only ever becomes text nodes (textContent): never HTML.

/** h("a", {href: "/"}, "text", child): an element; attributes starting with "on" are listeners. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

let ids = 0;
export function uid(prefix = "f") { ids += 1; return `${prefix}-${ids}`; }

const UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["min", 60]];
const SHORT = { min: "min", hour: "h", day: "d", week: "w", month: "mo", year: "y" };

/** "5 min ago" for a timestamp; the exact time is in the title (shown on hover) and datetime. */
export function relative(iso, now = Date.now()) {
  const seconds = Math.round((now - new Date(iso).getTime()) / 1000);
  if (seconds < 45) return "just now";
  for (const [unit, size] of UNITS) {
    if (seconds >= size) {
      const count = Math.floor(seconds / size);
      return unit === "min" || unit === "hour" ? `${count} ${SHORT[unit]} ago` : `${count}${SHORT[unit]} ago`;
    }
  }
  return "1 min ago";
}

export function when(iso) {
  const exact = new Date(iso).toLocaleString(undefined, { dateStyle: "full", timeStyle: "long" });
  return h("time", { datetime: iso, title: exact, class: "when" }, relative(iso));
}

setInterval(() => {
  for (const node of document.querySelectorAll("time.when")) node.textContent = relative(node.getAttribute("datetime"));
}, 30000);

export function displayName(user) { return user.display_name || user.username; }

export function avatar(user, size = "small") {
  if (user.avatar_url) return h("img", { class: `avatar ${size}`, src: user.avatar_url, alt: "" });
  const initial = (displayName(user).trim()[0] || "?").toUpperCase();
  return h("span", { class: `avatar ${size} initial`, "aria-hidden": "true" }, initial);
}

export function userLink(user) {
  // Names and text in <bdi> / dir="auto": right-to-left writing stays isolated from its neighbours.
  return h("a", { href: `/users/${encodeURIComponent(user.id)}`, class: "user" }, avatar(user), h("bdi", {}, displayName(user)), h("span", { class: "handle" }, `@${user.username}`));
}

/** Words for an API error: the problem's detail, a 429's wait, a network failure. */
export function describe(error) {
  if (!error || error.status === undefined) return "Something went wrong. Please try again.";
  if (error.network) return "The server cannot be reached. Check your connection and try again.";
  if (error.status === 429) {
    const wait = error.retryAfter ? waitWords(error.retryAfter) : "a moment";
    return `Too many attempts. Please try again in ${wait}.`;
  }
  if (error.status >= 500) return `The server had a problem (${error.status}). Please try again in a moment.`;
  return error.problem.detail || error.problem.title || `The request failed (${error.status}).`;
}

export function waitWords(seconds) {
  if (seconds < 60) return `${seconds} second${seconds === 1 ? "" : "s"}`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minute${minutes === 1 ? "" : "s"}`;
}

/** An alert box for an error, with a retry button when the error may pass. */
export function errorBox(error, retry) {
  const box = h("div", { class: "error", role: "alert" }, h("p", {}, describe(error)));
  if (retry && (error.network || error.status === 429 || error.status >= 500)) {
    box.append(h("button", { type: "button", onclick: retry }, "Try again"));
  }
  return box;
}

export function loading(text = "Loading…") {
  return h("p", { class: "loading", role: "status" }, text);
}

/** A labelled field. `input` options are the input's attributes; `hint` becomes its description. */
export function field(label, attrs = {}, hint = "") {
  const id = uid("field");
  const tag = attrs.tag || "input";
  const props = { ...attrs, id };
  delete props.tag;
  let control;
  if (tag === "select") {
    const options = props.options || [];
    delete props.options;
    control = h("select", props, options.map(([value, text]) => h("option", { value, selected: value === attrs.value }, text)));
  } else {
    if (tag === "textarea") delete props.value;
    control = h(tag, props);
    if (tag === "textarea" && attrs.value) control.value = attrs.value;
  }
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) control.setAttribute("aria-describedby", hintId);
  return h("div", { class: "field", dataset: { name: attrs.name || "" } },
    h("label", { for: id }, label),
    control,
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    h("p", { class: "field-error", id: errorId, hidden: true }));
}

/** Show an API error on a form: each field's message next to it, the rest as an alert. */
export function showFormError(form, error) {
  clearFormError(form);
  const general = [];
  const errors = error.fieldErrors ? error.fieldErrors() : [];
  for (const item of errors) {
    const name = (item.field || "").split(".").pop();
    const holder = form.querySelector(`.field[data-name="${CSS.escape(name)}"]`);
    if (holder) {
      const message = holder.querySelector(".field-error");
      const control = holder.querySelector("input, textarea, select");
      message.textContent = item.message;
      message.hidden = false;
      control.setAttribute("aria-invalid", "true");
      control.setAttribute("aria-describedby", `${message.id} ${control.getAttribute("aria-describedby") || ""}`.trim());
    } else general.push(`${name}: ${item.message}`);
  }
  if (!errors.length || general.length) {
    const box = errorBox(error, () => form.requestSubmit());
    if (general.length) box.append(h("ul", {}, general.map((text) => h("li", {}, text))));
    form.querySelector(".form-alert").replaceChildren(box);
  }
  const first = form.querySelector("[aria-invalid=true]");
  if (first) first.focus();
}

export function clearFormError(form) {
  form.querySelector(".form-alert")?.replaceChildren();
  for (const message of form.querySelectorAll(".field-error")) { message.hidden = true; message.textContent = ""; }
  for (const control of form.querySelectorAll("[aria-invalid]")) {
    control.removeAttribute("aria-invalid");
    const described = (control.getAttribute("aria-describedby") || "").split(" ").filter((id) => !id.endsWith("-error")).join(" ");
    if (described) control.setAttribute("aria-describedby", described); else control.removeAttribute("aria-describedby");
  }
}

/** A form that calls `action(values, form)`; its button shows progress, errors land on the form. */
export function form(fields, submitLabel, action, attrs = {}) {
  const button = h("button", { type: "submit", class: "primary" }, submitLabel);
  const node = h("form", { novalidate: true, ...attrs }, h("div", { class: "form-alert" }), fields, h("div", { class: "actions" }, button));
  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (button.disabled) return;
    clearFormError(node);
    const values = Object.fromEntries(new FormData(node).entries());
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    const label = button.textContent;
    button.textContent = `${label}…`;
    try {
      await action(values, node);
    } catch (error) {
      if (error && error.status !== undefined) showFormError(node, error); else { console.error(error); showFormError(node, {}); }
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
      button.textContent = label;
    }
  });
  return node;
}

/** A short message in the page's live region, gone after a while. */
export function notice(text, kind = "info") {
  const region = document.getElementById("alerts");
  const item = h("p", { class: `notice ${kind}` }, text);
  region.append(item);
  setTimeout(() => item.remove(), 6000);
}

/** A button that runs `action`, disabled while it runs; an error is shown as an alert. */
export function actionButton(label, action, attrs = {}) {
  const button = h("button", { type: "button", ...attrs }, label);
  button.addEventListener("click", async () => {
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try { await action(button); } catch (error) { notice(describe(error), "error"); } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  });
  return button;
}

export function confirmAction(question) { return window.confirm(question); }
