// The XDP attachment of a loaded program: a bpf_link on one interface in
// native (driver) or skb (generic) mode. With pinDir the link can be pinned
// at <pinDir>/link_<ifname> so the program outlives the process, and a later
// attach finds that pin and swaps its own program in with bpf_link_update:
// one atomic replacement, no gap in relaying.
import { existsSync, unlinkSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import koffi from 'koffi';
import type { Logger } from 'pino';
import { BpfError, errnoText } from './errors.ts';
import {
  BPF_LINK_TYPE_XDP,
  BPF_XDP,
  XDP_ATTACHED_DRV,
  XDP_ATTACHED_SKB,
  XDP_FLAGS_DRV_MODE,
  XDP_FLAGS_SKB_MODE,
  type LibBpf,
} from './libbpf.ts';
import { BpfLinkCreateOpts, BpfLinkInfo, BpfXdpQueryOpts, sizedOpts, type LinkCreateOpts, type LinkInfo, type XdpQueryOpts } from './structs.ts';

const { EBUSY, ENODEV, ENOLINK, EOPNOTSUPP } = constants.errno;
const ENOTSUPP = 524; // kernel-internal, leaks out of link creation

export type AttachMode = 'native' | 'skb';

export interface AttachOptions {
  /** Pin the link under pinDir so the program outlives this process. */
  keepPinned?: boolean;
  /** Detach an XDP program attached without a link (e.g. by `ip link`) before attaching. */
  replaceForeign?: boolean;
}

export interface AttachResult {
  ifname: string;
  ifindex: number;
  mode: AttachMode;
  /** 'created' a new link, or 'updated' a pinned one in place. */
  how: 'created' | 'updated';
  pinnedAt: string | undefined;
}

interface Attachment {
  ifname: string;
  ifindex: number;
  mode: AttachMode;
  linkFd: number;
  pinnedAt: string | undefined;
}

const modeFlags = (mode: AttachMode) => (mode === 'native' ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE);

/** Attaches one program to at most one interface at a time. */
export class XdpAttacher {
  private attachment: Attachment | undefined;

  constructor(
    private readonly lib: LibBpf,
    private readonly log: Logger,
    private readonly progFd: number,
    private readonly pinDir: string | undefined,
  ) {}

  private linkPath(ifname: string): string | undefined {
    return this.pinDir ? join(this.pinDir, `link_${ifname}`) : undefined;
  }

  /** XDP mode currently attached on ifindex, if any (netlink query). */
  private attachedMode(ifindex: number): { mode: AttachMode | 'other' | undefined; progId: number } {
    const q = sizedOpts<XdpQueryOpts>(BpfXdpQueryOpts, {});
    if (this.lib.xdpQuery(ifindex, 0, q) < 0) return { mode: undefined, progId: 0 };
    const attachMode = q.attach_mode;
    const progId = q.prog_id ?? 0;
    return { mode: attachMode === 0 ? undefined : attachMode === XDP_ATTACHED_DRV ? 'native' : attachMode === XDP_ATTACHED_SKB ? 'skb' : 'other', progId };
  }

  /**
   * Attaches the program to an interface with a bpf_link. With pinDir and a
   * link pinned there by an earlier run on the same interface and mode, the
   * new program replaces the old one atomically (bpf_link_update).
   */
  attach(ifname: string, mode: AttachMode, opts: AttachOptions): AttachResult {
    const what = `attach to ${ifname} in ${mode} mode`;
    if (this.attachment) throw new BpfError(`${what} failed: already attached to ${this.attachment.ifname}`, 'ATTACHED');
    const ifindex = ifname.length > 0 && ifname.length < 16 ? this.lib.ifNameToIndex(ifname) : 0;
    if (ifindex === 0) throw BpfError.fromErrno(what, ENODEV, `no interface named "${ifname}"`);
    const pinPath = this.linkPath(ifname);

    if (pinPath && existsSync(pinPath)) {
      const updated = this.updatePinnedLink(pinPath, ifname, ifindex, mode);
      if (updated) return updated;
    }

    const current = this.attachedMode(ifindex);
    if (current.mode !== undefined && opts.replaceForeign) {
      // A program attached without a link blocks link creation (EBUSY).
      this.log.warn({ ifname, progId: current.progId, mode: current.mode }, 'detaching a foreign XDP program');
      const flags = current.mode === 'other' ? 0 : modeFlags(current.mode);
      const err = this.lib.xdpDetach(ifindex, flags, null);
      if (err < 0) throw BpfError.fromErrno(`detach the XDP program already on ${ifname}`, -err);
    }

    const fd = this.lib.linkCreate(this.progFd, ifindex, BPF_XDP, sizedOpts<LinkCreateOpts>(BpfLinkCreateOpts, { flags: modeFlags(mode) }));
    if (fd < 0) {
      const e = -fd;
      const hint =
        e === EBUSY && current.mode !== undefined
          ? `${ifname} already has an XDP program (id ${current.progId}, ${current.mode} mode) not owned by this link; detach it (ip link set dev ${ifname} xdp off) or pass replaceForeign`
          : e === EOPNOTSUPP || e === ENOTSUPP
            ? mode === 'native' ? `the driver of ${ifname} has no native XDP; use skb mode` : ''
            : '';
      throw BpfError.fromErrno(what, e, hint);
    }
    let pinnedAt: string | undefined;
    if (opts.keepPinned) {
      if (!pinPath) {
        this.lib.close(fd);
        throw new BpfError(`${what} failed: keepPinned needs pinDir`, 'NO_PIN_DIR');
      }
      const err = this.lib.objPin(fd, pinPath);
      if (err < 0) {
        this.lib.linkDetach(fd);
        this.lib.close(fd);
        throw BpfError.fromErrno(`pin the XDP link at ${pinPath}`, -err);
      }
      pinnedAt = pinPath;
    }
    this.attachment = { ifname, ifindex, mode, linkFd: fd, pinnedAt };
    this.log.info({ ifname, ifindex, mode, pinnedAt }, 'xdp program attached');
    return { ifname, ifindex, mode, how: 'created', pinnedAt };
  }

  /** Swaps our program into a pinned link; undefined when the pin cannot be used (it is removed). */
  private updatePinnedLink(pinPath: string, ifname: string, ifindex: number, mode: AttachMode): AttachResult | undefined {
    const fd = this.lib.objGet(pinPath);
    if (fd < 0) {
      this.log.warn({ pinPath, error: errnoText(-fd) }, 'pinned XDP link unusable; removing it');
      unlinkSync(pinPath);
      return undefined;
    }
    const info: LinkInfo = {};
    const err = this.lib.linkInfoByFd(fd, info, [koffi.sizeof(BpfLinkInfo)]);
    const linkType = info.type;
    const linkIfindex = info.type_info?.xdp.ifindex;
    const current = this.attachedMode(ifindex);
    const reason =
      err < 0 ? `cannot read link info: ${errnoText(-err)}`
      : linkType !== BPF_LINK_TYPE_XDP ? `not an XDP link (type ${linkType})`
      : linkIfindex !== ifindex ? `attached to ifindex ${linkIfindex} (defunct or another interface), not ${ifindex}`
      : current.mode !== mode ? `attached in ${current.mode ?? 'no'} mode, ${mode} requested`
      : undefined;
    if (reason === undefined) {
      const uerr = this.lib.linkUpdate(fd, this.progFd, null);
      if (uerr === 0) {
        this.attachment = { ifname, ifindex, mode, linkFd: fd, pinnedAt: pinPath };
        this.log.info({ ifname, ifindex, mode, pinnedAt: pinPath }, 'replaced the program of the pinned XDP link atomically');
        return { ifname, ifindex, mode, how: 'updated', pinnedAt: pinPath };
      }
      this.log.warn({ pinPath, error: errnoText(-uerr) }, 'updating the pinned XDP link failed; re-attaching');
    } else {
      this.log.warn({ pinPath, reason }, 'pinned XDP link does not fit; re-attaching (relaying pauses briefly)');
    }
    unlinkSync(pinPath);
    this.lib.linkDetach(fd);
    this.lib.close(fd);
    return undefined;
  }

  /** Where the program is attached, if it is. */
  attached(): AttachResult | undefined {
    const a = this.attachment;
    return a && { ifname: a.ifname, ifindex: a.ifindex, mode: a.mode, how: 'created', pinnedAt: a.pinnedAt };
  }

  /** Detaches from the interface and removes the link pin. */
  detach(): void {
    const a = this.attachment;
    if (!a) return;
    this.attachment = undefined;
    if (a.pinnedAt && existsSync(a.pinnedAt)) unlinkSync(a.pinnedAt);
    const err = this.lib.linkDetach(a.linkFd);
    this.lib.close(a.linkFd);
    // ENOLINK: the interface went away and took the attachment with it.
    if (err < 0 && -err !== ENOLINK) throw BpfError.fromErrno(`detach from ${a.ifname}`, -err);
    this.log.info({ ifname: a.ifname, mode: a.mode }, 'xdp program detached');
  }

  /**
   * Closes the link fd without detaching: a pinned link keeps the program
   * attached, an unpinned one detaches as its last fd closes.
   */
  release(): void {
    if (!this.attachment) return;
    this.lib.close(this.attachment.linkFd);
    this.attachment = undefined;
  }
}
