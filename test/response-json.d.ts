// Test code reads JSON bodies it asserts on field by field; typing each one adds noise, not safety.
declare global {
  interface Response {
    json(): Promise<any>
  }
  interface Body {
    json(): Promise<any>
  }
}
export {}
