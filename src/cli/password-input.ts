/** Reads a new password without putting it in argv (visible in ps) or echoing it on a terminal. */
import { CommandError, UsageError } from './args'

/** 128 + SIGINT, as a shell reports a process ended by Ctrl-C. */
const EXIT_INTERRUPTED = 130

export async function readPassword(fromStdin: boolean): Promise<string> {
  if (fromStdin) return stripOneNewline(await Bun.stdin.text())
  if (!process.stdin.isTTY) throw new UsageError('stdin is not a terminal: pass --password-stdin and pipe the password')
  return withEchoOff(async () => {
    // One reader for both prompts: a second iteration over stdin would never see the second line.
    const lines = terminalLines()
    try {
      const first = await prompt('Password: ', lines)
      const second = await prompt('Repeat password: ', lines)
      if (first !== second) throw new CommandError('the two passwords differ; nothing was changed')
      return first
    } finally {
      await lines.return(undefined)
    }
  })
}

/** Prompts go to stderr, so `users add 201 > out` still shows them. */
async function prompt(label: string, lines: AsyncGenerator<string>): Promise<string> {
  process.stderr.write(label)
  const { value, done } = await lines.next()
  // The Enter that ended the line wasn't echoed either.
  process.stderr.write('\n')
  if (done) throw new CommandError('no password given; nothing was changed')
  return value
}

async function* terminalLines(): AsyncGenerator<string> {
  const decoder = new TextDecoder()
  let buffered = ''
  for await (const chunk of Bun.stdin.stream()) {
    buffered += decoder.decode(chunk, { stream: true })
    for (let end = buffered.indexOf('\n'); end !== -1; end = buffered.indexOf('\n')) {
      yield buffered.slice(0, end).replace(/\r$/, '')
      buffered = buffered.slice(end + 1)
    }
  }
}

/** Echo goes off before the first prompt is shown, so nothing typed after it can appear on screen. */
async function withEchoOff<T>(read: () => Promise<T>): Promise<T> {
  if (!setEcho(false)) throw new UsageError('cannot turn off terminal echo (stty failed): pass --password-stdin and pipe the password')
  const interrupted = () => {
    setEcho(true)
    process.stderr.write('\n')
    process.exit(EXIT_INTERRUPTED)
  }
  process.once('SIGINT', interrupted)
  try {
    return await read()
  } finally {
    process.off('SIGINT', interrupted)
    setEcho(true)
  }
}

function setEcho(on: boolean): boolean {
  try {
    return Bun.spawnSync(['stty', on ? 'echo' : '-echo'], { stdin: 'inherit', stdout: 'ignore', stderr: 'ignore' }).success
  } catch {
    return false
  }
}

function stripOneNewline(text: string): string {
  return text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text
}
