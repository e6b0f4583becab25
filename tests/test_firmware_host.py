"""The Python host driver: on fake memory (the mmap backend) and on the Verilated RTL."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from snnfpga.errors import SnnfpgaError
from snnfpga.firmware import codegen, host
from snnfpga.firmware import regmap as R
from snnfpga.sim import reference
from tests.firmware_common import default_plan, harness, small_images, small_plan, validation_images

REG = R.BY_NAME


# ---- memory-mapped backend on a temporary file ------------------------------------------------


@pytest.fixture
def fake_memory(tmp_path):
    """A file that holds the register block's address space, with the constants of a plan."""
    plan = small_plan("ram")
    path = tmp_path / "mem"
    memory = bytearray(R.ADDRESS_BYTES + 4096)  # the block at base 4096 (one page in)
    consts = R.build_constants(plan)
    for name in host.IDENTITY:
        struct.pack_into("<I", memory, 4096 + REG[name].offset, consts[name])
    for layer, size in enumerate(consts["LAYER_SIZE"]):
        struct.pack_into("<I", memory, 4096 + REG["LAYER_SIZE"].address(layer), size)
    path.write_bytes(bytes(memory))
    return plan, path


def poke(path, offset, value):
    with open(path, "r+b") as f:
        f.seek(4096 + offset)
        f.write(struct.pack("<I", value))


def peek(path, offset):
    return struct.unpack_from("<I", path.read_bytes(), 4096 + offset)[0]


def test_mmio_bus_reads_and_writes_words(fake_memory):
    plan, path = fake_memory
    with host.MmioBus(path, base=4096) as bus:
        assert bus.read(REG["ID"].offset) == R.ID_VALUE
        bus.write(REG["PIXELS"].address(3), 0x11223344)
        with pytest.raises(host.BusError, match="bad register offset"):
            bus.read(2)
        with pytest.raises(host.BusError, match="bad register offset"):
            bus.write(R.ADDRESS_BYTES, 0)
    assert peek(path, REG["PIXELS"].address(3)) == 0x11223344
    with pytest.raises(host.BusError, match="page size"):
        host.MmioBus(path, base=4)
    with pytest.raises(host.BusError, match="cannot open"):
        host.MmioBus(path.parent / "absent")


def test_driver_on_fake_memory(fake_memory):
    plan, path = fake_memory
    with host.MmioBus(path, base=4096) as bus:
        accel = host.Accelerator(bus, plan, timeout_polls=20)
        consts = accel.init()
        assert consts["LAYER_SIZE"] == [9, 4]
        assert peek(path, REG["CTRL"].offset) == R.pack_fields("CTRL", SOFT_RESET=1)
        # Nothing sets DONE in plain memory: the wait times out.
        image = np.arange(15, dtype=np.uint8).reshape(3, 5) * 17
        with pytest.raises(host.DeviceTimeout, match="20 status reads"):
            accel.infer(image)
        words = [peek(path, REG["PIXELS"].address(k)) for k in range(4)]
        assert words == [0x33221100, 0x77665544, 0xBBAA9988, 0x00EEDDCC]
        assert peek(path, REG["CTRL"].offset) == R.pack_fields("CTRL", START=1)
        # A result "appears": DONE, class and a negative score.
        poke(path, REG["STATUS"].offset, R.pack_fields("STATUS", DONE=1))
        poke(path, REG["RESULT"].offset, 2)
        poke(path, REG["SCORE"].address(1), 0xFFFFFFF6)
        result = accel.infer(image)
        assert result.cls == 2 and result.scores[1] == -10
        poke(path, REG["STATUS"].offset, R.pack_fields("STATUS", BUSY=1))
        with pytest.raises(host.DeviceBusy):
            accel.infer(image)
        poke(path, REG["STATUS"].offset, R.pack_fields("STATUS", ERROR=1, ERROR_CODE=R.ERROR_START_WHILE_BUSY))
        with pytest.raises(host.DeviceError, match="START written") as info:
            accel.infer(image)
        assert info.value.code == R.ERROR_START_WHILE_BUSY
        with pytest.raises(host.FirmwareError, match="takes 15"):
            accel.infer(np.zeros(16, dtype=np.uint8))
        poke(path, REG["SPIKES"].address(1), 42)
        assert accel.read_counters().spikes == [0, 42]


def test_identity_checks_on_fake_memory(fake_memory):
    plan, path = fake_memory
    with host.MmioBus(path, base=4096) as bus:
        with pytest.raises(host.IdentityMismatch, match="GEOMETRY") as info:
            host.Accelerator(bus, small_plan("rom")).init()
        assert isinstance(info.value, SnnfpgaError)
        poke(path, REG["MODEL_HASH"].offset, 0x12345678)
        with pytest.raises(host.IdentityMismatch, match="MODEL_HASH is 0x12345678"):
            host.Accelerator(bus, plan).init()
        poke(path, REG["ID"].offset, 0)
        with pytest.raises(host.IdentityMismatch, match="ID"):
            host.Accelerator(bus).init()


def test_weight_loading_protocol_on_fake_memory(fake_memory):
    plan, path = fake_memory
    with host.MmioBus(path, base=4096) as bus:
        accel = host.Accelerator(bus, plan)
        accel.init()
        # Plain memory does not auto-increment WEIGHT_ADDR: the driver's read-back notices.
        with pytest.raises(host.WeightsError, match="WEIGHT_ADDR"):
            accel.load_weights(codegen.weights_blob(plan))
        with pytest.raises(host.WeightsError, match="CRC"):
            accel.load_weights(codegen.weights_blob(plan)[:-1] + b"\0")
        with pytest.raises(host.WeightsError, match="another model or plan"):
            accel.load_weights(codegen.weights_blob(small_plan("ram", "two-hidden")))


# ---- simulation backend: the Verilated system behind the harness's serve mode ------------------


def test_host_driver_on_rtl_matches_reference():
    plan = small_plan("ram")
    images = small_images(5)
    ref = reference.run(plan.artifact, images)
    with host.SimBus(harness(plan).binary) as bus:
        accel = host.Accelerator(bus, plan)
        accel.init()
        accel.load_weights(plan)
        accel.set_irq(True)
        for n, image in enumerate(images):
            result = accel.infer(image)
            assert result.cls == ref.classes[n] and result.scores == ref.scores[n].tolist()
            assert bus.irq()
            counters = accel.read_counters()
            assert counters.spikes == [int(c[n]) for c in ref.spike_counts()]
            assert counters.images == n + 1 and counters.cycles > 0
        assert bus.cycles() > 0


def test_host_driver_on_rtl_errors_and_recovery():
    plan = small_plan("rom")
    images = small_images(2)
    ref = reference.run(plan.artifact, images)
    with host.SimBus(harness(plan).binary) as bus:
        with pytest.raises(host.IdentityMismatch, match="GEOMETRY"):
            host.Accelerator(bus, small_plan("ram")).init()
        accel = host.Accelerator(bus, plan)
        accel.init()
        with pytest.raises(host.WeightsError, match="ROM"):
            accel.load_weights(plan)
        accel.start(images[0])
        accel.bus.write(REG["CTRL"].offset, R.pack_fields("CTRL", START=1))  # START while busy
        with pytest.raises(host.DeviceError) as info:
            accel.wait_done()
        assert info.value.code == R.ERROR_START_WHILE_BUSY
        accel.clear()
        accel.soft_reset()
        assert accel.infer(images[1]).cls == ref.classes[1]
        with pytest.raises(host.BusError, match="bad register offset"):
            bus.read(R.ADDRESS_BYTES)
    with pytest.raises(host.BusError, match="closed"):
        bus.read(0)


def test_host_driver_on_default_model_rtl():
    plan = default_plan("rom")
    images = validation_images(3)
    ref = reference.run(plan.artifact, images)
    with host.SimBus(harness(plan).binary) as bus:
        accel = host.Accelerator(bus, plan)
        accel.init()
        results = [accel.infer(image) for image in images]
    assert [r.cls for r in results] == ref.classes.tolist()
    assert [r.scores for r in results] == ref.scores.tolist()
