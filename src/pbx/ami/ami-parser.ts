/**
 * Incremental AMI reader (README "AMI"): bytes in any split, messages out. A message is `Key: Value`
 * lines ending at a blank line; CRLF, bare LF and the `\r\n\n` frame end of asterisk#761 all end a
 * line. Keys keep their case, order and repeats. Memory is bounded: a frame that grows past
 * `maxFrameChars` without a blank line is reported once as an overflow, after which the parser
 * ignores everything (the connection is to be dropped).
 */
import { FieldsMessage } from './ami-message'

export const MAX_FRAME_CHARS = 1024 * 1024

export interface AmiParserHandlers {
  /** The greeting line `Asterisk Call Manager/<version>`, which has no blank line after it. */
  onBanner(version: string): void
  onMessage(message: FieldsMessage): void
  /** Once, when a frame exceeds the limit. */
  onOverflow(): void
}

const BANNER = /^Asterisk Call Manager\/(.*)$/

export class AmiParser {
  private readonly decoder = new TextDecoder('utf-8')
  /** Pieces of the line not yet ended by LF; joined once the LF arrives, so a slow frame costs O(n). */
  private partial: string[] = []
  private fields: Array<[string, string]> = []
  private frameChars = 0
  private partialChars = 0
  private firstLine = true
  private overflowed = false
  /** Inside the bare output lines of an old-style `Response: Follows`: every line is output. */
  private rawOutput = false

  constructor(
    private readonly handlers: AmiParserHandlers,
    private readonly maxFrameChars = MAX_FRAME_CHARS,
  ) {}

  push(chunk: Uint8Array | string): void {
    if (this.overflowed) return
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true })
    let start = 0
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
      this.partial.push(text.slice(start, end))
      start = end + 1
      const line = this.partial.join('')
      this.partial = []
      this.partialChars = 0
      this.frameChars += line.length + 1
      if (this.tooLarge()) return
      this.line(line.endsWith('\r') ? line.slice(0, -1) : line)
      if (this.overflowed) return
    }
    if (start < text.length) {
      const rest = text.slice(start)
      this.partial.push(rest)
      this.partialChars += rest.length
      this.tooLarge()
    }
  }

  private tooLarge(): boolean {
    if (this.frameChars + this.partialChars <= this.maxFrameChars) return false
    this.overflowed = true
    this.partial = []
    this.fields = []
    this.rawOutput = false
    this.handlers.onOverflow()
    return true
  }

  private line(line: string): void {
    if (this.firstLine) {
      this.firstLine = false
      const banner = BANNER.exec(line)
      if (banner) {
        this.frameChars = 0
        this.handlers.onBanner(banner[1]!)
        return
      }
    }
    if (line === '') return this.endOfMessage()
    const colon = line.indexOf(':')
    if (colon > 0 && !this.rawOutput) {
      this.fields.push([line.slice(0, colon).trim(), line.slice(colon + 1).replace(/^ +/, '')])
    } else if (this.rawOutput || this.isCommandOutput()) {
      // Asterisk before 14 sends command output as bare lines after `Response: Follows`.
      this.rawOutput = true
      if (line !== '--END COMMAND--') this.fields.push(['Output', line])
    }
    // Any other line without a key is garbage and is dropped.
  }

  private isCommandOutput(): boolean {
    return this.fields.length > 0 && this.fields[0]![0] === 'Response' && this.fields[0]![1] === 'Follows'
  }

  private endOfMessage(): void {
    this.frameChars = 0
    this.rawOutput = false
    if (this.fields.length === 0) return // a stray blank line
    const message = new FieldsMessage(this.fields)
    this.fields = []
    this.handlers.onMessage(message)
  }
}
