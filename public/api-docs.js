// Starts Swagger UI on /api/docs (a file, not inline, so the page keeps script-src 'self').
window.ui = SwaggerUIBundle({ url: '/api/openapi.json', dom_id: '#swagger-ui', deepLinking: true });
