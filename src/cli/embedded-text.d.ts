// The files of systemd/, imported `with { type: 'text' }` by shipped-files.ts: Bun embeds their text in the binary.
declare module '*.service' {
  const text: string
  export default text
}
declare module '*.conf' {
  const text: string
  export default text
}
declare module '*.local' {
  const text: string
  export default text
}
declare module '*/logrotate/softphone-backend' {
  const text: string
  export default text
}
