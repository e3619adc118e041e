/**
 * The runner's end of a session holder's socket (`holder.ts`): connects,
 * reads the holder's hello, then passes messages both ways.
 *
 * @module
 */
import {
  encodeHolderMessage,
  type FromHolder,
  FromHolderSchema,
  HOLDER_PROTOCOL_VERSION,
  HolderFrameReader,
  type HolderHello,
  type HolderStatus,
  type ToHolder,
} from "./holder_protocol.ts";
import type { OutputChunk } from "./session.ts";
import { UnixStream } from "./unix_stream.ts";

/** What a {@linkcode HolderConnection} hands on. */
export interface HolderConnectionHandler {
  /** A message after the hello. */
  onMessage(message: FromHolder): void;
  /** Session output; `frame`: the same as the relay binary frame it came as. */
  onOutput(chunk: OutputChunk, frame: Uint8Array): void;
  /** The connection closed (either side), or a frame was bad. */
  onClose(): void | Promise<void>;
}

/** The handler of a holder whose frames nobody wants (a spare, one being ended or checked). */
export const IGNORE_FRAMES: HolderConnectionHandler = {
  onMessage: () => {},
  onOutput: () => {},
  onClose: () => {},
};

/** How long a holder has to answer a connection with its hello, ms. */
const HELLO_TIMEOUT_MS = 5000;

/** An open connection to one holder. */
export class HolderConnection {
  readonly hello: HolderHello;
  readonly #socket: UnixStream;
  #handler: HolderConnectionHandler | undefined;
  readonly closed: Promise<void>;

  private constructor(socket: UnixStream, hello: HolderHello) {
    this.#socket = socket;
    this.hello = hello;
    this.closed = socket.closed;
  }

  /**
   * Connects to the holder at `path` and reads its hello. Rejects when nobody
   * listens there (a holder that is gone leaves its socket file) or no hello
   * comes.
   */
  static async connect(path: string): Promise<HolderConnection> {
    const socket = await UnixStream.connect(path);
    return await new Promise((resolve, reject) => {
      const reader = new HolderFrameReader(FromHolderSchema);
      let connection: HolderConnection | undefined;
      const timer = setTimeout(() => fail(new Error("the holder did not say hello")), HELLO_TIMEOUT_MS);
      const fail = (error: Error) => {
        clearTimeout(timer);
        reject(error);
        socket.destroy();
      };
      socket.start({
        onClose: () => {
          clearTimeout(timer);
          if (!connection) reject(new Error("the holder closed the connection"));
          else void connection.#handler?.onClose();
        },
        onData: (bytes) => {
          for (const frame of reader.push(bytes)) {
            if (!frame.ok) {
              if (connection) connection.#socket.destroy();
              else fail(new Error(frame.error));
              return;
            }
            const value = frame.value;
            if (!connection) {
              if (value.kind !== "message" || value.message.type !== "holder-hello") {
                fail(new Error("the holder did not start with its hello"));
                return;
              }
              clearTimeout(timer);
              connection = new HolderConnection(socket, value.message);
              resolve(connection);
              continue;
            }
            if (value.kind === "output") connection.#handler?.onOutput(value.chunk, value.frame);
            else connection.#handler?.onMessage(value.message);
          }
        },
      });
    });
  }

  /** Whether the holder speaks this runner's protocol. */
  get compatible(): boolean {
    return this.hello.protocol === HOLDER_PROTOCOL_VERSION;
  }

  /** Whether the connection has closed. */
  get isClosed(): boolean {
    return this.#socket.isClosed;
  }

  /**
   * Joins as the holder's runner (replacing any other), and hands its frames to `handler` from now
   * on; joined already, only the handler changes.
   */
  join(handler: HolderConnectionHandler): void {
    const joined = this.#handler !== undefined;
    this.#handler = handler;
    if (!joined) this.send({ type: "holder-join", protocol: HOLDER_PROTOCOL_VERSION, role: "runner" });
  }

  /**
   * Asks for the holder's status: as a `status` connection, which leaves the holder's runner alone,
   * unless this one joined as its runner already.
   */
  status(timeoutMs = 2000): Promise<HolderStatus | undefined> {
    const joined = this.#handler !== undefined;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      this.#handler = {
        onMessage: (message) => {
          if (message.type !== "holder-status") return;
          clearTimeout(timer);
          resolve(message);
        },
        onOutput: () => {},
        onClose: () => {
          clearTimeout(timer);
          resolve(undefined);
        },
      };
      if (!joined) this.send({ type: "holder-join", protocol: HOLDER_PROTOCOL_VERSION, role: "status" });
      this.send({ type: "holder-status-request" });
    });
  }

  /** Sends a message (dropped once closed). */
  send(message: ToHolder): void {
    this.#socket.write(encodeHolderMessage(message));
  }

  /** Stops reading the holder's frames, so the holder's socket fills and its session pauses. */
  pause(): void {
    this.#socket.pause();
  }

  /** Reads again after {@linkcode pause}. */
  resume(): void {
    this.#socket.resume();
  }

  /** Closes the connection; resolves once closed. */
  close(): Promise<void> {
    this.#socket.destroy();
    return this.closed;
  }
}
