// Swagger UI over this api's own document. A file, not an inline script: the page's CSP runs no other.
const root = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: root.dataset.document, // "/openapi.json", named by the page
  domNode: root,
  deepLinking: true,
  tryItOutEnabled: true,
  // The key stays in this tab's memory: never written to localStorage.
  persistAuthorization: false,
  // The default posts the document to validator.swagger.io; nothing leaves this origin.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
