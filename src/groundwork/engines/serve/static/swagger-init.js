// Starts Swagger UI on /docs with this server's OpenAPI document (groundwork's own file, not vendored).
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
  });
});
