"""``snnfpga infer``: run images on a board over its host link (SPI or UART) and check every result.

    snnfpga infer MODEL --board icebreaker|ulx3s [--data FILE] [--split all|train|val] [--images N]
                  [--link ftdi|sim] [--url URL] [--spi-hz HZ] [--clock MHZ] [--lanes P] [--json]

The plan is the one the board's bitstream is built from (``snnfpga bitstream``: the board's
target defaults, ``--lanes`` and ``--clock`` as given there). The Python host driver
(firmware/host.py) talks to the accelerator through the board's bridge, by ``board.link``:
SPI (the iCEBreaker; ``--spi-hz``) or a UART at ``board.baud`` (the ULX3S, 2 Mbaud).
``--link ftdi`` (default) is the board's FTDI chip (pyftdi URL ``--url``, default the
board's), ``--link sim`` the board shell Verilated, which receives the same bytes (SPI: its
SCK at the board's ratio of clock to ``--spi-hz``; UART: the bitstream's clock cycles per
bit). The driver checks the identity registers against the model, loads
the weights when the plan keeps them in RAM, enables the interrupt and infers the images
(default: the whole split); class, scores, spike counters and counters of every image are
compared with the integer reference, as firmware in the loop does. Prints images,
mismatches, accuracy, images/s over the link and bytes transferred; the exit status is 1 on
any mismatch (the first one printed), 2 on a bad input or an unusable link.
"""

from __future__ import annotations

import math
import sys

from snnfpga.commands.common import clock_mhz, emit_json, lanes_option, positive_int

DESCRIPTION = __doc__.split("\n\n")[0]
LINKS = ("ftdi", "sim")


def add_parser(subparsers) -> None:
    from snnfpga.rtl.boards import BOARDS

    p = subparsers.add_parser("infer", description=DESCRIPTION,
                              help="run images on a board over its SPI or UART link (FTDI, or the simulated board) and check them")
    p.add_argument("model", metavar="MODEL", help="model directory, or a shipped name ('default', 'tiny', ...)")
    p.add_argument("--board", required=True, metavar="NAME",
                   help=f"board: {', '.join(f'{b.name} ({b.title})' for b in BOARDS.values())}")
    p.add_argument("--data", default="default", metavar="FILE",
                   help=".npz, MNIST IDX images file, or 'default' (the bundled data, default)")
    p.add_argument("--split", default="val", choices=("all", "train", "val"),
                   help="which part of the data (default val: the validation split)")
    p.add_argument("--images", type=positive_int, metavar="N", help="the first N images (default: all)")
    p.add_argument("--link", default="ftdi", choices=LINKS,
                   help="ftdi: the board on its FTDI chip (default); sim: the Verilated board shell")
    p.add_argument("--url", metavar="URL", help="pyftdi URL of the FTDI link (default: the board's)")
    p.add_argument("--spi-hz", type=positive_int, metavar="HZ",
                   help="SPI clock in Hz, SPI boards only (default: the board's; at most the accelerator clock / 4)")
    p.add_argument("--clock", type=clock_mhz, metavar="MHZ",
                   help="accelerator clock the bitstream was built for (default: the board's)")
    p.add_argument("--lanes", type=lanes_option, metavar="P",
                   help="parallel lanes the bitstream was built with (default: the target's)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    p.set_defaults(func=run)


def board_clock_mhz(board, target, wanted: float | None) -> float:
    """The accelerator clock (MHz) of the board's bitstream: the PLL's output for ``wanted``
    (default the board's clock), as ``snnfpga bitstream`` makes it."""
    from snnfpga.rtl.pll import pll_module

    return pll_module(target.family, board.oscillator_mhz, float(wanted or board.clock_mhz))[1]


def sim_sck_half(clock: float, spi_hz: float) -> int:
    """clk cycles per SCK phase that make the simulated SCK at most ``spi_hz`` (>= 2)."""
    return max(2, math.ceil(clock * 1e6 / (2 * spi_hz)))


def check_link_options(args, board) -> None:
    """:class:`ConfigError` for an option of the other link (``--spi-hz`` on a UART board)."""
    from snnfpga.errors import ConfigError

    if board.link != "spi" and args.spi_hz is not None:
        raise ConfigError(f"--spi-hz is for SPI boards; the host link of {board.name} is a UART "
                          f"at {board.baud:,} baud (the bitstream's rate)")


def _built(plan, **build):
    """The board-shell harness of ``plan`` (built, or the cached build), reported on stderr."""
    from snnfpga.firmware import fil

    harness = fil.build(plan, **build)
    print(f"simulated board: {'cached build' if harness.cached else f'built in {harness.build_s:.1f} s'} "
          f"({harness.directory})", file=sys.stderr)
    return harness


def open_link(args, board, plan, clock: float) -> tuple[object, dict]:
    """The bus of ``--link`` on ``board``'s host link (SPI or UART) and what describes it:
    ``url``, ``spi_hz`` (None on a UART), ``rate`` (for people), ``harness``."""
    from snnfpga.firmware import ftdi_link

    if board.link == "uart":
        from snnfpga.rtl.uart_bridge import divisor_for

        divisor = divisor_for(clock * 1e6, board.baud)  # the bitstream's, as snnfpga bitstream makes it
        if args.link == "ftdi":
            bus = ftdi_link.FtdiUartBus.open(board, args.url)
            return bus, {"url": bus.url, "spi_hz": None, "rate": f"UART {bus.baud / 1e6:.3g} Mbaud", "harness": None}
        harness = _built(plan, shell="uart", divisor=divisor)
        bus = ftdi_link.UartBus(ftdi_link.SimUartPort(harness.binary, divisor))
        return bus, {"url": None, "spi_hz": None, "rate": f"UART {clock / divisor:.3g} Mbaud", "harness": harness}
    spi_hz = float(args.spi_hz or board.spi_hz)
    ftdi_link.check_spi_hz(board, spi_hz, clock)
    if args.link == "ftdi":
        bus = ftdi_link.FtdiSpiBus.open(board, args.url, spi_hz, clock)
        return bus, {"url": bus.url, "spi_hz": bus.frequency, "rate": f"SPI {bus.frequency / 1e6:.3g} MHz",
                     "harness": None}
    harness = _built(plan, shell="spi")
    half = sim_sck_half(clock, spi_hz)
    bus = ftdi_link.SpiBus(ftdi_link.SimSpiPort(harness.binary, sck_half=half), board.prelude)
    hz = clock * 1e6 / (2 * half)
    return bus, {"url": None, "spi_hz": hz, "rate": f"SPI {hz / 1e6:.3g} MHz", "harness": harness, "sck_half": half}


def run(args) -> int:
    from tqdm import tqdm

    from snnfpga.commands.synth import plan_for_target
    from snnfpga.firmware import fil
    from snnfpga.firmware.host import Accelerator, FirmwareError, IdentityMismatch
    from snnfpga.model.data import load_dataset
    from snnfpga.rtl.boards import get_board
    from snnfpga.rtl.csr import check_mappable
    from snnfpga.rtl.targets import get_target

    board = get_board(args.board)
    check_link_options(args, board)
    target = get_target(board.target)
    plan = plan_for_target(args.model, target, args.lanes)
    check_mappable(plan)
    art = plan.artifact
    dataset = load_dataset(args.data).split(args.split).limit(args.images).require_input_shape(art.input_shape)
    clock = board_clock_mhz(board, target, args.clock)
    n = len(dataset)
    print(f"infer on {board.name} over {args.link}: {plan.summary()}, on {n} images", file=sys.stderr)
    bus, link = open_link(args, board, plan, clock)
    where = link["url"] or "the simulated board"
    try:
        accel = Accelerator(bus, plan)
        with tqdm(total=n, unit="img", file=sys.stderr, leave=False, mininterval=0.5) as bar:
            try:
                outcome = fil.run_host(accel, dataset.images, progress=lambda done: bar.update(done - bar.n))
            except IdentityMismatch as exc:
                raise FirmwareError(f"{where}: {exc}: not the {board.name} bitstream of {art.name} with this plan "
                                    f"(snnfpga bitstream / program), or a faulty link") from None
        bytes_total, transactions = bus.bytes, bus.transactions
    finally:
        bus.close()
    summary = summarize(args, board, plan, clock, link, dataset, outcome, bytes_total, transactions)
    print_summary(summary, link["rate"], "frames" if board.link == "uart" else "transactions")
    if args.json:
        emit_json(summary)
    return 1 if summary["mismatches"] else 0


def summarize(args, board, plan, clock, link, dataset, outcome, bytes_total: int, transactions: int) -> dict:
    """The command's result: counts, accuracy, link throughput (the image phase), first mismatch."""
    import numpy as np

    from snnfpga.firmware import fil
    from snnfpga.sim import reference

    art, n = plan.artifact, len(dataset)
    comparison = fil.compare(art, dataset.images, outcome)
    bad = comparison.images
    first = comparison.mismatches[0] if comparison.mismatches else None
    got = np.array([-1 if r["class"] is None else r["class"] for r in outcome.images], dtype=np.int64)
    labels = dataset.labels.astype(np.int64)
    expected = reference.run(art, dataset.images).classes
    setup = outcome.events.get("weights", outcome.events["init"])  # the link's state before the first image
    image_s = max(outcome.wall_s - setup["wall_s"], 1e-9)
    image_bytes = bytes_total - setup["bytes"]
    weights = outcome.events.get("weights")
    harness = link["harness"]
    summary = {
        "model": art.name,
        "board": board.name,
        "target": board.target,
        "link": args.link,
        "url": link["url"],
        "spi_hz": None if link["spi_hz"] is None else round(link["spi_hz"]),
        "clock_mhz": clock,
        "plan": plan.summary(),
        "lanes": plan.lanes,
        "weight_storage": plan.weight_storage,
        "n": n,
        "matches": n - len(bad),
        "mismatches": len(bad),
        "accuracy_unit": "percent",
        "accuracy_board": round(100.0 * float((got == labels[:len(got)]).sum()) / n, 4),
        "accuracy_ref": round(100.0 * float((expected == labels).mean()), 4),
        "interrupt_checked": bool(outcome.images) and outcome.images[0]["irq"] is not None,
        "run_s": round(outcome.wall_s, 3),
        "images_per_s": round(len(outcome.images) / image_s, 2),
        "bytes": bytes_total,
        "bytes_per_image": round(image_bytes / max(len(outcome.images), 1), 1),
        "transactions": transactions,
        "weight_load_bytes": None if weights is None else weights["bytes"] - outcome.events["init"]["bytes"],
        "weight_load_s": None if weights is None else round(weights["wall_s"] - outcome.events["init"]["wall_s"], 3),
        "simulated_cycles": outcome.total_cycles,
        "link_cycles_per_image": None,
        "board_images_per_s": None,
        "harness_build_s": None if harness is None else round(harness.build_s, 2),
        "harness_cached": None if harness is None else harness.cached,
        "first_mismatch": None if first is None else
        {"image": first.image, "what": first.what, "expected": first.expected, "got": first.got},
    }
    if outcome.total_cycles is not None and outcome.images:
        per_image = (outcome.total_cycles - setup["cycles"]) / len(outcome.images)
        summary["link_cycles_per_image"] = round(per_image, 1)
        summary["board_images_per_s"] = round(clock * 1e6 / per_image, 1)  # no host latency between transactions
    return summary


def print_summary(s: dict, rate: str, transactions: str = "transactions") -> None:
    """``s`` for people; ``rate``: the link and its speed (``SPI 6 MHz``, ``UART 2 Mbaud``);
    ``transactions``: what the link's transactions are called."""
    n = s["n"]
    verdict = "all match the reference" if not s["mismatches"] else f"{s['mismatches']} image(s) differ from the reference"
    where = s["url"] or "the simulated board"
    print(f"{s['model']} on {s['board']} over {s['link']} ({where}, {rate}), {n} images: {verdict}")
    print(f"  matches            {s['matches']}/{n}")
    print(f"  accuracy board     {s['accuracy_board']:.2f}%")
    print(f"  accuracy reference {s['accuracy_ref']:.2f}%")
    print(f"  interrupt line     {'checked' if s['interrupt_checked'] else 'not visible over this link'}")
    if s["weight_load_bytes"] is not None:
        print(f"  weight loading     {s['weight_load_bytes']} bytes in {s['weight_load_s']:.2f} s")
    print(f"  link               {s['images_per_s']:.1f} images/s, {s['bytes']} bytes in {s['transactions']} "
          f"{transactions} ({s['bytes_per_image']:.0f} bytes per image), {s['run_s']:.2f} s")
    if s["board_images_per_s"] is not None:
        print(f"  simulated board    {s['link_cycles_per_image']:.0f} cycles per image over the link: "
              f"{s['board_images_per_s']:.0f} images/s at {s['clock_mhz']:g} MHz with no host latency")
    if s["first_mismatch"] is not None:
        from snnfpga.firmware.fil import Mismatch

        print(f"first {Mismatch(**s['first_mismatch'])}")
