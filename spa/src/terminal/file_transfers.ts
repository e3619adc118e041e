/**
 * A terminal's file transfers, browser side: uploads of files the person dropped or picked into
 * the session's working directory, and downloads a `coda-download` in the session offered, each
 * saved only when the person says so.
 *
 * Uploads go in pieces of {@linkcode TRANSFER_CHUNK_BYTES} as upload frames, never more than
 * {@linkcode TRANSFER_WINDOW_BYTES} past the runner's last `upload-ack` (the relay closes a client
 * that sends more). Downloads arrive as download frames, each acknowledged with `download-ack` once
 * received, which is what lets the runner send more. Everything under way fails, with a reason,
 * when the link drops.
 *
 * It knows nothing about the DOM beyond `File` and `Blob`: the link is a {@linkcode TransferLink}.
 *
 * @module
 */
import {
  type ClientMessage,
  encodeFileFrame,
  type FileFrame,
  fileNameProblem,
  type ServerMessage,
  TRANSFER_CHUNK_BYTES,
  TRANSFER_WINDOW_BYTES,
} from "@coda/relay/protocol";

/** What transfers need of the terminal's link. */
export interface TransferLink {
  /** The session, while the link may act on it (online, not watch-only, binary frames); else `undefined`. */
  sessionId(): string | undefined;
  send(message: ClientMessage): void;
  sendFrame(frame: Uint8Array<ArrayBuffer>): void;
}

/** One transfer as the pane shows it. */
export interface Transfer {
  /** Unique in this pane: direction and transfer id. */
  key: string;
  direction: "upload" | "download";
  transferId: number;
  name: string;
  size: number;
  /** Bytes the other side has (uploads: written by the runner; downloads: received here). */
  done: number;
  /**
   * `offered`: a download waiting for Save or Dismiss; `active`: under way; `done`: complete
   * (`detail` says where an upload went); `failed`: `detail` says why.
   */
  status: "offered" | "active" | "done" | "failed";
  detail?: string;
}

/** Options of {@linkcode FileTransfers}. */
export interface FileTransfersOptions {
  link: TransferLink;
  /** The list changed (a new array each time). */
  onChange: (transfers: Transfer[]) => void;
  /** A download is complete: hand the file to the person (a Blob URL, `<a download>`). */
  save: (name: string, file: Blob) => void;
}

interface Upload {
  transfer: Transfer;
  file: Blob;
  sent: number;
  acked: number;
  sending: boolean;
}

interface Download {
  transfer: Transfer;
  parts: Uint8Array<ArrayBuffer>[];
  acked: number;
}

/** The transfers of one terminal pane. */
export class FileTransfers {
  readonly #options: FileTransfersOptions;
  readonly #transfers = new Map<string, Transfer>();
  readonly #uploads = new Map<number, Upload>();
  readonly #downloads = new Map<number, Download>();
  #nextUpload = 1;
  #ackScheduled = false;

  constructor(options: FileTransfersOptions) {
    this.#options = options;
  }

  /** Every transfer shown, oldest first. */
  get list(): Transfer[] {
    return [...this.#transfers.values()];
  }

  /** Uploads `file` into the session's working directory; a name the runner would refuse fails here first. */
  upload(file: File): void {
    const transferId = this.#nextUpload++;
    const transfer: Transfer = {
      key: `upload-${transferId}`,
      direction: "upload",
      transferId,
      name: file.name,
      size: file.size,
      done: 0,
      status: "active",
    };
    this.#transfers.set(transfer.key, transfer);
    const sessionId = this.#options.link.sessionId();
    const problem = fileNameProblem(file.name);
    if (sessionId === undefined) {
      return this.#fail(transfer, "not connected; try again once the terminal is online");
    }
    if (problem) return this.#fail(transfer, problem);
    const upload: Upload = { transfer, file, sent: 0, acked: 0, sending: false };
    this.#uploads.set(transferId, upload);
    this.#options.link.send({
      type: "upload-start",
      sessionId,
      transferId,
      name: file.name,
      size: file.size,
    });
    this.#changed();
    void this.#pump(upload);
  }

  /** Starts an offered download. */
  accept(key: string): void {
    const transfer = this.#transfers.get(key);
    const sessionId = this.#options.link.sessionId();
    if (!transfer || transfer.status !== "offered") return;
    if (sessionId === undefined) {
      return this.#fail(transfer, "not connected; try again once the terminal is online");
    }
    transfer.status = "active";
    this.#downloads.set(transfer.transferId, { transfer, parts: [], acked: 0 });
    this.#options.link.send({ type: "download-accept", sessionId, transferId: transfer.transferId });
    this.#changed();
  }

  /** Stops a transfer under way (telling the runner), or forgets an offered, finished or failed one. */
  dismiss(key: string): void {
    const transfer = this.#transfers.get(key);
    if (!transfer) return;
    const sessionId = this.#options.link.sessionId();
    if (transfer.status === "active" && sessionId !== undefined) {
      const { transferId } = transfer;
      this.#options.link.send(
        transfer.direction === "upload"
          ? { type: "upload-cancel", sessionId, transferId }
          : { type: "download-cancel", sessionId, transferId },
      );
    }
    this.#forget(transfer);
    this.#transfers.delete(key);
    this.#changed();
  }

  /** A transfer message from the runner (or the relay). */
  onMessage(message: ServerMessage): void {
    switch (message.type) {
      case "upload-ack": {
        const upload = this.#uploads.get(message.transferId);
        if (!upload) return;
        upload.acked = Math.max(upload.acked, message.offset);
        upload.transfer.done = upload.acked;
        this.#changed();
        void this.#pump(upload);
        return;
      }
      case "upload-done": {
        const upload = this.#uploads.get(message.transferId);
        if (!upload) return;
        this.#uploads.delete(message.transferId);
        Object.assign(upload.transfer, { status: "done", done: upload.transfer.size, detail: message.path });
        this.#changed();
        return;
      }
      case "download-offer": {
        const key = `download-${message.transferId}`;
        const offered: Transfer = {
          key,
          direction: "download",
          transferId: message.transferId,
          name: message.name,
          size: message.size,
          done: 0,
          status: "offered",
        };
        const existing = this.#transfers.get(key);
        if (existing?.status === "active") return;
        this.#transfers.set(key, offered);
        this.#changed();
        return;
      }
      case "download-done": {
        const download = this.#downloads.get(message.transferId);
        if (!download) return;
        this.#downloads.delete(message.transferId);
        const { transfer } = download;
        if (transfer.done !== message.size) {
          return this.#fail(transfer, "some bytes did not arrive; try again");
        }
        Object.assign(transfer, { status: "done", detail: "saved" });
        this.#changed();
        this.#options.save(transfer.name, new Blob(download.parts));
        return;
      }
      case "transfer-error": {
        const transfer = this.#transfers.get(`${message.direction}-${message.transferId}`);
        if (transfer && transfer.status !== "done") this.#fail(transfer, message.message);
        return;
      }
    }
  }

  /** A piece of a download. */
  onFrame(frame: FileFrame): void {
    const download = this.#downloads.get(frame.transferId);
    if (frame.type !== "download" || !download || frame.offset !== download.transfer.done) return;
    download.parts.push(frame.data.slice());
    download.transfer.done += frame.data.byteLength;
    this.#changed();
    this.#scheduleAck();
  }

  /** The link dropped: everything under way is over (offers stay: they outlive the link). */
  linkLost(): void {
    for (const transfer of this.#transfers.values()) {
      if (transfer.status === "active") this.#fail(transfer, "the connection dropped; try again");
    }
  }

  /** Sends the upload's next pieces while its window has room. */
  async #pump(upload: Upload): Promise<void> {
    if (upload.sending) return;
    upload.sending = true;
    try {
      while (upload.sent < upload.file.size && upload.sent - upload.acked < TRANSFER_WINDOW_BYTES) {
        const offset = upload.sent;
        const end = Math.min(
          upload.file.size,
          offset + TRANSFER_CHUNK_BYTES,
          upload.acked + TRANSFER_WINDOW_BYTES,
        );
        const data = new Uint8Array(await upload.file.slice(offset, end).arrayBuffer());
        const sessionId = this.#options.link.sessionId();
        if (this.#uploads.get(upload.transfer.transferId) !== upload) return;
        if (sessionId === undefined) return this.#fail(upload.transfer, "the connection dropped; try again");
        this.#options.link.sendFrame(
          encodeFileFrame({
            type: "upload",
            sessionId,
            transferId: upload.transfer.transferId,
            offset,
            data,
          }),
        );
        upload.sent = end;
      }
    } finally {
      upload.sending = false;
    }
  }

  /** Acknowledges what every download received, once per turn. */
  #scheduleAck(): void {
    if (this.#ackScheduled) return;
    this.#ackScheduled = true;
    queueMicrotask(() => {
      this.#ackScheduled = false;
      const sessionId = this.#options.link.sessionId();
      if (sessionId === undefined) return;
      for (const download of this.#downloads.values()) {
        const offset = download.transfer.done;
        if (offset <= download.acked) continue;
        download.acked = offset;
        this.#options.link.send({
          type: "download-ack",
          sessionId,
          transferId: download.transfer.transferId,
          offset,
        });
      }
    });
  }

  #fail(transfer: Transfer, why: string): void {
    this.#forget(transfer);
    Object.assign(transfer, { status: "failed", detail: why });
    this.#changed();
  }

  #forget(transfer: Transfer): void {
    if (transfer.direction === "upload") this.#uploads.delete(transfer.transferId);
    else this.#downloads.delete(transfer.transferId);
  }

  #changed(): void {
    this.#options.onChange(this.list.map((transfer) => ({ ...transfer })));
  }
}
