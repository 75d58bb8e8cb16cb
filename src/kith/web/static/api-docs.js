// Starts Swagger UI on the API docs page (kith.web.api_docs). A file of its own rather than an
// inline script, so the page's Content-Security-Policy allows scripts from this origin only.
const root = document.getElementById("swagger-ui");

// An operation's summary is one button that opens it; deep linking would put a link to the
// operation inside that button (a control inside a control, which a screen reader cannot
// reach). The address still follows the open operation; the path is shown as plain text.
const plainDeepLinks = () => ({
  wrapComponents: {
    DeepLink: (Original, system) => (props) => system.React.createElement(Original, { ...props, enabled: false }),
  },
});

window.ui = SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  domNode: root,
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  // Keeps the token of "Authorize" across reloads (in this origin's localStorage).
  persistAuthorization: true,
  // No validator badge: it would send the document's URL to validator.swagger.io.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  plugins: [plainDeepLinks],
  // A light theme for examples and responses: agate, the default, shows numbers at 3.4:1.
  syntaxHighlight: { theme: "idea" },
});

// Swagger UI leaves two controls without a name: its dialogs' close button (an icon) and a
// request body's text area. They are named as they appear.
const unnamed = [
  [".close-modal", "Close"],
  ["textarea.body-param__text", "Request body"],
];
new MutationObserver(() => {
  for (const [selector, name] of unnamed) {
    for (const control of document.querySelectorAll(`${selector}:not([aria-label])`)) {
      control.setAttribute("aria-label", name);
    }
  }
}).observe(document.body, { childList: true, subtree: true });
