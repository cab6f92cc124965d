/**
 * One AF_UNIX datagram socket that sends to a fixed address: what sd_notify(3) needs. Bun has no
 * unix datagram sockets (node:dgram lacks `unix_dgram`, Bun.connect({ unix }) is a stream), so
 * this calls libc through bun:ffi, which needs the JIT: it throws under MemoryDenyWriteExecute=yes
 * (README "systemd readiness and watchdog").
 */
import type * as BunFfi from 'bun:ffi'

const AF_UNIX = 1
const SOCK_DGRAM = 2
const SOCK_CLOEXEC = 0o2000000
/** Never block the event loop on a full queue, and never die of SIGPIPE. */
const MSG_DONTWAIT = 0x40
const MSG_NOSIGNAL = 0x4000
/** sizeof(struct sockaddr_un): sa_family_t then sun_path[108]. */
const SOCKADDR_UN_SIZE = 110
const SUN_PATH_OFFSET = 2

/** `/run/systemd/notify`, or `@name` for a socket in the abstract namespace (unix(7)). */
export type UnixAddress = string

export interface EncodedAddress {
  bytes: Uint8Array
  length: number
}

/**
 * struct sockaddr_un for `address`. A path ends with its NUL and counts it; an abstract name
 * starts with a NUL instead and its length stops at the last byte of the name, because every
 * byte counted belongs to the name (unix(7) "abstract").
 */
export function encodeUnixAddress(address: UnixAddress): EncodedAddress {
  const abstract = address.startsWith('@')
  const name = new TextEncoder().encode(abstract ? address.slice(1) : address)
  const length = SUN_PATH_OFFSET + 1 + name.length
  if (length > SOCKADDR_UN_SIZE) throw new Error(`unix socket address too long (${name.length} bytes)`)
  const bytes = new Uint8Array(SOCKADDR_UN_SIZE)
  new DataView(bytes.buffer).setUint16(0, AF_UNIX, true)
  bytes.set(name, SUN_PATH_OFFSET + (abstract ? 1 : 0))
  return { bytes, length }
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM',
  2: 'ENOENT',
  11: 'EAGAIN',
  13: 'EACCES',
  20: 'ENOTDIR',
  22: 'EINVAL',
  90: 'EMSGSIZE',
  91: 'EPROTOTYPE',
  97: 'EAFNOSUPPORT',
  105: 'ENOBUFS',
  111: 'ECONNREFUSED',
}

let ffi: typeof BunFfi | null = null
let libc: ReturnType<typeof openLibc> | null = null

/** bun:ffi is loaded on first use only: without NOTIFY_SOCKET the service never touches it. */
function openLibc() {
  ffi ??= require('bun:ffi') as typeof BunFfi
  const { FFIType } = ffi
  return ffi.dlopen('libc.so.6', {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  }).symbols
}

function errnoName(): string {
  const errno = ffi!.read.i32(libc!.__errno_location()!)
  return ERRNO_NAMES[errno] ?? `errno ${errno}`
}

export interface DatagramSender {
  /** Sends one datagram; returns null, or the errno name it failed with. Never blocks. */
  send(message: string): string | null
  close(): void
}

/** Opens the socket (and libc, on first use). Throws if bun:ffi or the socket is unavailable. */
export function openUnixDatagram(address: UnixAddress): DatagramSender {
  const target = encodeUnixAddress(address)
  libc ??= openLibc()
  const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)
  if (fd < 0) throw new Error(`socket(AF_UNIX, SOCK_DGRAM): ${errnoName()}`)
  let open = true
  return {
    send(message) {
      if (!open) return 'EBADF'
      const body = new TextEncoder().encode(message)
      const { ptr } = ffi!
      const sent = libc!.sendto(fd, ptr(body), body.length, MSG_DONTWAIT | MSG_NOSIGNAL, ptr(target.bytes), target.length)
      return Number(sent) === body.length ? null : errnoName()
    },
    close() {
      if (open) libc!.close(fd)
      open = false
    },
  }
}
