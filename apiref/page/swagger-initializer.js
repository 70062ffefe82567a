// Starts swagger-ui on the API reference page: the document beside it,
// PKCE for the OAuth 2 authorization code flow, no calls to any other
// site (the page's Content-Security-Policy allows none).
"use strict";
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  var ui = SwaggerUIBundle({
    url: new URL("openapi.json", window.location.href).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null,
    oauth2RedirectUrl: new URL("oauth2-redirect.html", window.location.href).href,
    persistAuthorization: false,
    displayOperationId: false,
    defaultModelsExpandDepth: 0,
    docExpansion: "none",
    filter: true
  });
  var clientId = root.getAttribute("data-client-id");
  ui.initOAuth({
    clientId: clientId || "",
    usePkceWithAuthorizationCodeGrant: true,
    scopeSeparator: " "
  });
  window.ui = ui;
});
