// Swagger UI on Frameflow's own contract; "Authorize" takes a JWT or an ff_ API key.
window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
});
