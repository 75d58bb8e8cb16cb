// Kith's JSON API, as the web client uses it. The access token lives in this module's memory
// only; the refresh token is an HttpOnly cookie that scripts cannot read (docs/web-client.md).
export const API = "/api/kith/v1";
const WEB_AUTH = `${API}/auth/web`;

let accessToken = null;
let refreshing = null;
const listeners = new Set();

/** An RFC 9457 problem answered by the API, or a network failure (status 0). */
export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super((problem && (problem.detail || problem.title)) || (status ? `HTTP ${status}` : "network"));
    this.status = status;
    this.problem = problem || {};
    this.code = this.problem.code || (status ? "http_error" : "network_error");
    this.retryAfter = retryAfter;
  }
  get network() { return this.status === 0; }
  fieldErrors() { return this.problem.errors || []; }
}

export function onSignedOut(listener) { listeners.add(listener); }
export function signedIn() { return accessToken !== null; }
export function currentToken() { return accessToken; }

function signOutLocally() {
  const was = accessToken !== null;
  accessToken = null;
  if (was) listeners.forEach((listener) => listener());
}

async function send(method, path, { body, form, query, auth = true, headers = {} } = {}) {
  let url = path.startsWith("/") ? path : `${API}/${path}`;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (value !== undefined && value !== null && value !== "") params.set(key, value);
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin" };
  if (auth && accessToken) init.headers.Authorization = `Bearer ${accessToken}`;
  if (form) init.body = form;
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, { detail: "The server cannot be reached. Check your connection and try again." });
  }
  if (response.status === 204) return null;
  let data = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try { data = await response.json(); } catch { data = null; }
  }
  if (!response.ok) {
    const retry = Number(response.headers.get("retry-after")) || null;
    throw new ApiError(response.status, data, retry);
  }
  return data;
}

// Refresh tokens rotate, and one presented twice ends the session (reuse detection). Tabs
// share the cookie, so they take turns: a tab refreshes only while it holds this lock, and
// then sends the cookie the previous tab's refresh left (Web Locks; where a browser has none,
// in a plain-HTTP page on a LAN address, each tab refreshes on its own).
function oneTabAtATime(work) {
  return navigator.locks ? navigator.locks.request("kith-refresh", work) : work();
}

/** A new access token from the refresh cookie; one refresh at a time (tokens rotate). */
export function refresh() {
  if (!refreshing) {
    refreshing = oneTabAtATime(() => send("POST", `${WEB_AUTH}/refresh`, { auth: false }))
      .then((data) => { accessToken = data.access_token; return true; })
      .catch((error) => {
        if (error.status === 401 || error.status === 403) { signOutLocally(); return false; }
        throw error;
      })
      .finally(() => { refreshing = null; });
  }
  return refreshing;
}

/** Call the API; an expired access token is refreshed once from the cookie and the call repeated. */
export async function api(method, path, options = {}) {
  try {
    return await send(method, path, options);
  } catch (error) {
    if (error.status === 401 && accessToken && options.auth !== false) {
      if (await refresh()) return send(method, path, options);
    }
    throw error;
  }
}

export async function logIn(identifier, password) {
  const body = identifier.includes("@") ? { email: identifier, password } : { username: identifier, password };
  const data = await send("POST", `${WEB_AUTH}/login`, { body, auth: false });
  accessToken = data.access_token;
}

export async function logOut() {
  try { await send("POST", `${WEB_AUTH}/logout`, { auth: false }); } finally { signOutLocally(); }
}

/** Called once at start: a refresh cookie from an earlier visit signs the user in again. */
export async function resume() {
  try { return await refresh(); } catch { return false; }
}

export function forget() { signOutLocally(); }
