/**
 * File transfer for one session: uploads from a browser into the session's working directory, and
 * downloads a `coda-download` in the session offered (see `download_command.ts`).
 *
 * Uploads. `upload-start` names a plain base name and a size within the cap; the file is written
 * to a private temporary name (`.coda-upload-<random>.part`, created exclusively) in the session's
 * current directory, each piece at the offset where the last ended, acknowledged (`upload-ack`) so
 * the client keeps at most a window in flight. Complete, it is linked under its final name only if
 * that name is still free (never overwriting a file that appeared meanwhile), so a half upload never
 * shows under it; any failure (conflict, no space, a lost piece, the client gone) removes the
 * temporary file and tells the client why.
 *
 * Downloads. A download mark offers a regular file within the cap to every client (`download-offer`;
 * the relay passes it to clients that may take it). A client that accepts gets the file in pieces
 * of {@linkcode TRANSFER_CHUNK_BYTES}, at most {@linkcode TRANSFER_WINDOW_BYTES} past its last
 * `download-ack`, and none while the link is congested, so a download never crowds out the
 * session's output; it stops when the client goes.
 *
 * @module
 */
import { basename, isAbsolute, join, resolve } from "node:path";
import {
  DEFAULT_TRANSFER_MAX_BYTES,
  fileNameProblem,
  MetaLine,
  type RelayToRunner,
  TRANSFER_CHUNK_BYTES,
  TRANSFER_WINDOW_BYTES,
} from "@coda/relay/protocol";
import type { SessionSink } from "./session.ts";
import type { Logger } from "./log.ts";

/** The messages {@linkcode FileTransfers.handle} takes. */
export type TransferMessage = Extract<
  RelayToRunner,
  {
    type:
      | "upload-start"
      | "upload-data"
      | "upload-cancel"
      | "download-accept"
      | "download-ack"
      | "download-cancel";
  }
>;

/** Options of {@linkcode FileTransfers}. */
export interface FileTransfersOptions {
  sessionId: string;
  sink: SessionSink;
  log: Logger;
  /** The session's working directory now: where uploads go, what relative offers resolve against. */
  cwd: () => string;
  /** Largest file taken or offered, bytes (default {@linkcode DEFAULT_TRANSFER_MAX_BYTES}). */
  maxBytes?: number;
  /** The link's queue above which a download waits (default 1 MiB, the session's own limit). */
  maxLinkBuffered?: number;
}

/** Uploads under way in one session at most, whatever its clients ask. */
const MAX_UPLOADS = 16;
/** Download offers one session keeps; the oldest goes first. */
const MAX_OFFERS = 32;
/** How often a download held back by a congested link looks again, ms. */
const LINK_POLL_MS = 20;

interface Upload {
  clientId: string;
  transferId: number;
  size: number;
  written: number;
  temporary: string;
  path: string;
  file: Deno.FsFile;
  /** The pieces' writes, in order. */
  work: Promise<void>;
  over: boolean;
}

interface Offer {
  path: string;
  name: string;
  size: number;
}

interface Download {
  clientId: string;
  transferId: number;
  file: Deno.FsFile;
  sent: number;
  acked: number;
  pumping: boolean;
  over: boolean;
  timer?: ReturnType<typeof setTimeout>;
}

/** The transfers of one session. */
export class FileTransfers {
  readonly #options: FileTransfersOptions;
  readonly #maxBytes: number;
  readonly #uploads = new Map<string, Upload>();
  readonly #offers = new Map<number, Offer>();
  readonly #downloads = new Map<string, Download>();
  #nextOffer = 1;
  #closed = false;

  constructor(options: FileTransfersOptions) {
    this.#options = options;
    this.#maxBytes = options.maxBytes ?? DEFAULT_TRANSFER_MAX_BYTES;
  }

  /** Uploads and downloads under way (for tests and status). */
  get active(): { uploads: number; downloads: number } {
    return { uploads: this.#uploads.size, downloads: this.#downloads.size };
  }

  /**
   * Handles one transfer message; never throws. Only an `upload-start` is waited for (its pieces must
   * find it); pieces queue per upload, downloads run by themselves.
   */
  async handle(message: TransferMessage): Promise<void> {
    if (this.#closed || message.clientId === undefined) return;
    const key = `${message.clientId}\u0000${message.transferId}`;
    switch (message.type) {
      case "upload-start":
        return await this.#startUpload(key, message.clientId, message);
      case "upload-data": {
        const upload = this.#uploads.get(key);
        if (!upload) return;
        const { offset, data } = message;
        upload.work = upload.work.then(() => this.#write(upload, offset, data));
        return;
      }
      case "upload-cancel": {
        const upload = this.#uploads.get(key);
        if (upload) upload.work = upload.work.then(() => this.#endUpload(upload));
        return;
      }
      case "download-accept":
        void this.#startDownload(key, message.clientId, message.transferId);
        return;
      case "download-ack": {
        const download = this.#downloads.get(key);
        if (!download) return;
        download.acked = Math.max(download.acked, Math.min(message.offset, download.sent));
        void this.#pump(download);
        return;
      }
      case "download-cancel": {
        const download = this.#downloads.get(key);
        if (download) this.#endDownload(download);
        return;
      }
    }
  }

  /**
   * A `coda-download` in the session offered `path`: a regular file within the cap is announced to
   * every client; anything else is a clear error for them.
   */
  async offer(path: string): Promise<void> {
    if (this.#closed) return;
    const full = isAbsolute(path) ? path : resolve(this.#options.cwd(), path);
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(full);
    } catch (error) {
      return this.#broadcastError(`coda-download: cannot read ${full}: ${describeError(error)}`);
    }
    if (!info.isFile) return this.#broadcastError(`coda-download: ${full} is not a regular file`);
    if (info.size > this.#maxBytes) {
      return this.#broadcastError(
        `coda-download: ${full} is ${formatBytes(info.size)}, over the ${
          formatBytes(this.#maxBytes)
        } cap (CODA_TRANSFER_MAX_BYTES)`,
      );
    }
    const transferId = this.#nextOffer++;
    // A name shown and saved by the browser: control characters become `_`.
    // deno-lint-ignore no-control-regex -- matching control characters is the point
    const name = basename(full).replace(/[\u0000-\u001f\u007f-\u009f]/g, "_");
    this.#offers.set(transferId, { path: full, name, size: info.size });
    if (this.#offers.size > MAX_OFFERS) this.#offers.delete(this.#offers.keys().next().value!);
    this.#options.sink.send({
      type: "download-offer",
      sessionId: this.#options.sessionId,
      transferId,
      name,
      size: info.size,
    });
  }

  /** `clientId` left (its tab closed, the link dropped): its uploads are removed, its downloads stop. */
  clientGone(clientId: string): void {
    for (const upload of this.#uploads.values()) {
      if (upload.clientId === clientId) upload.work = upload.work.then(() => this.#endUpload(upload));
    }
    for (const download of this.#downloads.values()) {
      if (download.clientId === clientId) this.#endDownload(download);
    }
  }

  /** The session ended: every transfer stops, every partial upload is removed. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#offers.clear();
    for (const download of this.#downloads.values()) this.#endDownload(download);
    await Promise.all([...this.#uploads.values()].map((upload) => {
      upload.work = upload.work.then(() => this.#endUpload(upload));
      return upload.work;
    }));
  }

  async #startUpload(
    key: string,
    clientId: string,
    message: Extract<TransferMessage, { type: "upload-start" }>,
  ): Promise<void> {
    const { transferId, name, size } = message;
    const refuse = (why: string) => this.#error(clientId, transferId, "upload", why);
    const problem = fileNameProblem(name);
    if (problem) return refuse(`${problem}; nothing was written`);
    if (size > this.#maxBytes) {
      return refuse(
        `${name} is ${formatBytes(size)}, over the ${
          formatBytes(this.#maxBytes)
        } cap (CODA_TRANSFER_MAX_BYTES)`,
      );
    }
    if (this.#uploads.has(key)) return refuse(`upload ${transferId} is already under way`);
    if (this.#uploads.size >= MAX_UPLOADS) return refuse(`at most ${MAX_UPLOADS} uploads at once`);
    const dir = this.#options.cwd();
    const path = join(dir, name);
    if (await exists(path)) return refuse(`${name} already exists in ${dir}; rename it or remove that file`);
    const temporary = join(dir, `.coda-upload-${randomHex(8)}.part`);
    let file: Deno.FsFile;
    try {
      // The mode a new file of the user gets (0666 less the umask), as the final file will have it.
      file = await Deno.open(temporary, { write: true, createNew: true, mode: 0o666 });
    } catch (error) {
      return refuse(`cannot write in ${dir}: ${describeError(error)}`);
    }
    const upload: Upload = {
      clientId,
      transferId,
      size,
      written: 0,
      temporary,
      path,
      file,
      work: Promise.resolve(),
      over: false,
    };
    this.#uploads.set(key, upload);
    this.#options.log.info("upload started", { sessionId: this.#options.sessionId, path, size });
    if (size === 0) upload.work = upload.work.then(() => this.#finishUpload(upload));
  }

  async #write(upload: Upload, offset: number, data: Uint8Array): Promise<void> {
    if (upload.over) return;
    if (offset !== upload.written) {
      return await this.#failUpload(upload, `bytes from ${upload.written} went missing; upload again`);
    }
    if (upload.written + data.byteLength > upload.size) {
      return await this.#failUpload(upload, `more bytes than the ${upload.size} announced`);
    }
    try {
      for (let at = 0; at < data.byteLength;) at += await upload.file.write(data.subarray(at));
    } catch (error) {
      return await this.#failUpload(upload, writeFailure(error));
    }
    upload.written += data.byteLength;
    this.#options.sink.send({
      type: "upload-ack",
      sessionId: this.#options.sessionId,
      clientId: upload.clientId,
      transferId: upload.transferId,
      offset: upload.written,
    });
    if (upload.written === upload.size) await this.#finishUpload(upload);
  }

  /** Every byte is there: flushed, then linked under its name only if that is still free. */
  async #finishUpload(upload: Upload): Promise<void> {
    try {
      await upload.file.sync();
    } catch (error) {
      return await this.#failUpload(upload, writeFailure(error));
    }
    try {
      await Deno.link(upload.temporary, upload.path);
    } catch (error) {
      // Taken already; or a file system without hard links, where the name is checked once more, then renamed.
      if (error instanceof Deno.errors.AlreadyExists || await exists(upload.path)) {
        return await this.#failUpload(
          upload,
          `${basename(upload.path)} appeared meanwhile; nothing was replaced`,
        );
      }
      try {
        await Deno.rename(upload.temporary, upload.path);
      } catch (renameError) {
        return await this.#failUpload(
          upload,
          `could not name it ${basename(upload.path)}: ${describeError(renameError)}`,
        );
      }
    }
    await this.#endUpload(upload);
    this.#options.log.info("upload done", { sessionId: this.#options.sessionId, path: upload.path });
    this.#options.sink.send({
      type: "upload-done",
      sessionId: this.#options.sessionId,
      clientId: upload.clientId,
      transferId: upload.transferId,
      path: upload.path,
    });
  }

  async #failUpload(upload: Upload, why: string): Promise<void> {
    await this.#endUpload(upload);
    this.#error(upload.clientId, upload.transferId, "upload", why);
  }

  /** Closes the upload's file and removes its temporary name (the final name, if linked, stays). */
  async #endUpload(upload: Upload): Promise<void> {
    if (upload.over) return;
    upload.over = true;
    this.#uploads.delete(`${upload.clientId}\u0000${upload.transferId}`);
    try {
      upload.file.close();
    } catch {
      // Already closed.
    }
    await Deno.remove(upload.temporary).catch(() => {});
  }

  async #startDownload(key: string, clientId: string, transferId: number): Promise<void> {
    const refuse = (why: string) => this.#error(clientId, transferId, "download", why);
    const offer = this.#offers.get(transferId);
    if (!offer) return refuse("no such download any more; run coda-download again");
    if (this.#downloads.has(key)) return;
    let file: Deno.FsFile;
    try {
      file = await Deno.open(offer.path, { read: true });
    } catch (error) {
      return refuse(`cannot read ${offer.path}: ${describeError(error)}`);
    }
    // The path may name something else by now: what was opened is what counts.
    const info = await file.stat();
    if (!info.isFile || info.size > this.#maxBytes) {
      file.close();
      return refuse(
        `${offer.path} is no longer a regular file within the ${formatBytes(this.#maxBytes)} cap`,
      );
    }
    const download: Download = { clientId, transferId, file, sent: 0, acked: 0, pumping: false, over: false };
    this.#downloads.set(key, download);
    await this.#pump(download);
  }

  /** Sends pieces while the client's window has room and the link is not congested. */
  async #pump(download: Download): Promise<void> {
    if (download.pumping || download.over) return;
    download.pumping = true;
    try {
      const maxLinkBuffered = this.#options.maxLinkBuffered ?? 1024 * 1024;
      while (!download.over && download.sent - download.acked < TRANSFER_WINDOW_BYTES) {
        if (this.#options.sink.bufferedAmount() > maxLinkBuffered) {
          download.timer ??= setTimeout(() => {
            download.timer = undefined;
            void this.#pump(download);
          }, LINK_POLL_MS);
          return;
        }
        const buffer = new Uint8Array(TRANSFER_CHUNK_BYTES);
        let read: number | null;
        try {
          read = await download.file.read(buffer);
        } catch (error) {
          this.#endDownload(download);
          return this.#error(download.clientId, download.transferId, "download", describeError(error));
        }
        if (download.over) return;
        if (read === null) {
          this.#endDownload(download);
          this.#options.sink.send({
            type: "download-done",
            sessionId: this.#options.sessionId,
            clientId: download.clientId,
            transferId: download.transferId,
            size: download.sent,
          });
          return;
        }
        if (download.sent + read > this.#maxBytes) {
          this.#endDownload(download);
          return this.#error(
            download.clientId,
            download.transferId,
            "download",
            "the file grew past the cap",
          );
        }
        this.#options.sink.send({
          type: "download-data",
          sessionId: this.#options.sessionId,
          clientId: download.clientId,
          transferId: download.transferId,
          offset: download.sent,
          data: buffer.subarray(0, read),
        });
        download.sent += read;
      }
    } finally {
      download.pumping = false;
    }
  }

  #endDownload(download: Download): void {
    if (download.over) return;
    download.over = true;
    clearTimeout(download.timer);
    this.#downloads.delete(`${download.clientId}\u0000${download.transferId}`);
    try {
      download.file.close();
    } catch {
      // Already closed.
    }
  }

  #error(clientId: string, transferId: number, direction: "upload" | "download", message: string): void {
    this.#options.log.info("transfer failed", { sessionId: this.#options.sessionId, direction, message });
    this.#options.sink.send({
      type: "transfer-error",
      sessionId: this.#options.sessionId,
      clientId,
      transferId,
      direction,
      message: message.slice(0, 1024),
    });
  }

  #broadcastError(message: string): void {
    this.#options.sink.send({
      type: "meta",
      sessionId: this.#options.sessionId,
      data: MetaLine.error(message),
    });
  }
}

/** Why a write failed, in words: no space and a full quota said plainly. */
export function writeFailure(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  const text = describeError(error);
  if (code === "ENOSPC" || /os error 28\b|no space left/i.test(text)) {
    return "no space left on the device; the partial file was removed";
  }
  if (code === "EDQUOT" || /os error 122\b|quota exceeded/i.test(text)) {
    return "the disk quota is exceeded; the partial file was removed";
  }
  return `could not write: ${text}; the partial file was removed`;
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** `bytes` for people: bytes, KiB, MiB or GiB. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}
