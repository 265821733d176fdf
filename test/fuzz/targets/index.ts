// Every fuzz target, in the order they run.
import type { FuzzTarget } from '../engine/target.ts';
import { linkTarget } from './link.ts';
import { serverTarget } from './server.ts';
import { stunTarget } from './stun.ts';
import { xdpTarget } from './xdp.ts';

export const TARGETS: readonly FuzzTarget[] = [stunTarget, serverTarget, linkTarget, xdpTarget];
