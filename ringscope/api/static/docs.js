// Swagger UI on the app's own OpenAPI document, every asset served by the app.
(function () {
  "use strict";
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
})();
