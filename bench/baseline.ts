/** The performance baseline (README "Tests, CI and benchmarks"): a raw Bun.serve handler returning a small JSON. Run by bench/run.ts as its own process. */
const server = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  // Same mode as the release binary, which is built with NODE_ENV=production.
  development: false,
  fetch: () => Response.json({ success: true }),
})

console.log(`baseline listening on http://127.0.0.1:${server.port}/`)
