/* snn_driver.c: portable C11 driver of the snnfpga accelerator; see snn_driver.h. */
#include "snn_driver.h"

#ifdef SNN_IO_HEADER
#include SNN_IO_HEADER
#endif

/* ---- Register access layer ------------------------------------------------------------- */

#ifndef SNN_REG_READ
#define SNN_REG_READ(dev, offset) snn_io_read((dev), (offset))
#define SNN_REG_WRITE(dev, offset, value) snn_io_write((dev), (offset), (value))

static uint32_t snn_io_read(snn_dev_t *dev, uint32_t offset)
{
#ifndef SNN_NO_BUS_HOOKS
    if (dev->bus != NULL) {
        uint32_t value = 0;
        if (dev->bus->read(dev->bus->ctx, offset, &value) != 0) {
            dev->fault = 1;
            return 0;
        }
        return value;
    }
#endif
    return SNN_MMIO_READ(dev->base, offset);
}

static void snn_io_write(snn_dev_t *dev, uint32_t offset, uint32_t value)
{
#ifndef SNN_NO_BUS_HOOKS
    if (dev->bus != NULL) {
        if (dev->bus->write(dev->bus->ctx, offset, value) != 0) {
            dev->fault = 1;
        }
        return;
    }
#endif
    SNN_MMIO_WRITE(dev->base, offset, value);
}
#endif /* SNN_REG_READ */

static uint32_t reg_read(snn_dev_t *dev, uint32_t offset)
{
    return SNN_REG_READ(dev, offset);
}

static void reg_write(snn_dev_t *dev, uint32_t offset, uint32_t value)
{
    SNN_REG_WRITE(dev, offset, value);
}

/* A status after the accesses of one call: a bus fault overrides everything else. */
static snn_status_t settle(const snn_dev_t *dev, snn_status_t status)
{
    return dev->fault ? SNN_ERR_BUS : status;
}

/* Checks STATUS before an action that needs an idle device. */
static snn_status_t require_idle(snn_dev_t *dev)
{
    uint32_t status = reg_read(dev, SNN_REG_STATUS);
    if (dev->fault) {
        return SNN_ERR_BUS;
    }
    if (SNN_FIELD_GET(status, SNN_STATUS_ERROR)) {
        dev->hw_error = SNN_FIELD_GET(status, SNN_STATUS_ERROR_CODE);
        return SNN_ERR_HARDWARE;
    }
    if (SNN_FIELD_GET(status, SNN_STATUS_BUSY) || SNN_FIELD_GET(status, SNN_STATUS_LOADING)) {
        return SNN_ERR_BUSY;
    }
    return SNN_OK;
}

/* Two's complement 32-bit value to int32_t without implementation-defined conversion. */
static int32_t to_int32(uint32_t value)
{
    if (value <= (uint32_t)INT32_MAX) {
        return (int32_t)value;
    }
    return -(int32_t)(~value) - 1;
}

/* ---- Identity and control ---------------------------------------------------------------- */

static snn_status_t check_identity(snn_dev_t *dev)
{
    static const uint32_t layer_sizes[] = SNN_BUILD_LAYER_SIZES;
    uint32_t layer;

    if (reg_read(dev, SNN_REG_ID) != SNN_ID_VALUE) {
        return SNN_ERR_ID;
    }
    if (reg_read(dev, SNN_REG_VERSION) != SNN_BUILD_VERSION) {
        return SNN_ERR_VERSION;
    }
    if (reg_read(dev, SNN_REG_MODEL_HASH) != SNN_BUILD_MODEL_HASH) {
        return SNN_ERR_MODEL;
    }
    if (reg_read(dev, SNN_REG_SHAPE) != SNN_BUILD_SHAPE) {
        return SNN_ERR_SHAPE;
    }
    for (layer = 0; layer < SNN_BUILD_N_LAYERS; ++layer) {
        if (reg_read(dev, SNN_REG_LAYER_SIZE(layer)) != layer_sizes[layer]) {
            return SNN_ERR_SHAPE;
        }
    }
    if (reg_read(dev, SNN_REG_GEOMETRY) != SNN_BUILD_GEOMETRY ||
        reg_read(dev, SNN_REG_WIDTHS) != SNN_BUILD_WIDTHS) {
        return SNN_ERR_GEOMETRY;
    }
    return SNN_OK;
}

snn_status_t snn_init(snn_dev_t *dev, uintptr_t base, const snn_bus_t *bus)
{
    snn_status_t status;

    if (dev == NULL) {
        return SNN_ERR_ARG;
    }
#ifdef SNN_NO_BUS_HOOKS
    if (bus != NULL) {
        return SNN_ERR_ARG;
    }
#else
    if (bus != NULL && (bus->read == NULL || bus->write == NULL)) {
        return SNN_ERR_ARG;
    }
#endif
    dev->base = base;
    dev->bus = bus;
    dev->timeout_polls = SNN_DEFAULT_TIMEOUT_POLLS;
    dev->ctrl = 0;
    dev->fault = 0;
    dev->hw_error = SNN_HW_ERROR_NONE;
    dev->n_inputs = 0;
    dev->n_classes = 0;
    dev->n_layers = 0;
    dev->weight_ram = 0;
    dev->weight_chunks = 0;
    dev->weight_memories = 0;

    status = settle(dev, check_identity(dev));
    if (status != SNN_OK) {
        return status;
    }
    dev->n_inputs = SNN_BUILD_N_INPUTS;
    dev->n_classes = SNN_BUILD_N_CLASSES;
    dev->n_layers = SNN_BUILD_N_LAYERS;
    dev->weight_ram = SNN_BUILD_WEIGHT_RAM;
    dev->weight_chunks = SNN_BUILD_WEIGHT_CHUNKS;
    dev->weight_memories = SNN_BUILD_WEIGHT_MEMORIES;
    return snn_soft_reset(dev);
}

snn_status_t snn_soft_reset(snn_dev_t *dev)
{
    uint32_t polls;

    if (dev == NULL) {
        return SNN_ERR_ARG;
    }
    dev->fault = 0;
    dev->ctrl = 0; /* the reset also clears the interrupt enable */
    dev->hw_error = SNN_HW_ERROR_NONE;
    reg_write(dev, SNN_REG_CTRL, SNN_FIELD_SET(SNN_CTRL_SOFT_RESET, 1));
    for (polls = 0; polls < dev->timeout_polls && !dev->fault; ++polls) {
        uint32_t status = reg_read(dev, SNN_REG_STATUS);
        if ((status & (SNN_STATUS_BUSY_MASK | SNN_STATUS_LOADING_MASK | SNN_STATUS_ERROR_MASK)) == 0) {
            return settle(dev, SNN_OK);
        }
    }
    return settle(dev, SNN_ERR_TIMEOUT);
}

snn_status_t snn_clear(snn_dev_t *dev)
{
    if (dev == NULL) {
        return SNN_ERR_ARG;
    }
    dev->fault = 0;
    dev->hw_error = SNN_HW_ERROR_NONE;
    reg_write(dev, SNN_REG_CTRL, dev->ctrl | SNN_FIELD_SET(SNN_CTRL_CLEAR, 1));
    return settle(dev, SNN_OK);
}

snn_status_t snn_set_irq(snn_dev_t *dev, int enable)
{
    if (dev == NULL) {
        return SNN_ERR_ARG;
    }
    dev->fault = 0;
    dev->ctrl = enable ? SNN_FIELD_SET(SNN_CTRL_IRQ_ENABLE, 1) : 0u;
    reg_write(dev, SNN_REG_CTRL, dev->ctrl); /* no action bit: only the enable changes */
    return settle(dev, SNN_OK);
}

/* ---- Inference ----------------------------------------------------------------------------- */

snn_status_t snn_start(snn_dev_t *dev, const uint8_t *pixels, size_t n_pixels)
{
    snn_status_t status;
    size_t k;

    if (dev == NULL || pixels == NULL || n_pixels != dev->n_inputs || n_pixels == 0) {
        return SNN_ERR_ARG;
    }
    dev->fault = 0;
    status = require_idle(dev);
    if (status != SNN_OK) {
        return status;
    }
    for (k = 0; k < n_pixels; k += SNN_PIXELS_PER_WORD) {
        uint32_t word = 0;
        size_t byte;
        for (byte = 0; byte < SNN_PIXELS_PER_WORD && k + byte < n_pixels; ++byte) {
            word |= (uint32_t)pixels[k + byte] << (8u * byte);
        }
        reg_write(dev, (uint32_t)SNN_REG_PIXELS(k / SNN_PIXELS_PER_WORD), word);
    }
    reg_write(dev, SNN_REG_CTRL, dev->ctrl | SNN_FIELD_SET(SNN_CTRL_START, 1));
    return settle(dev, SNN_OK);
}

snn_status_t snn_wait_done(snn_dev_t *dev)
{
    uint32_t polls;

    if (dev == NULL) {
        return SNN_ERR_ARG;
    }
    dev->fault = 0;
    for (polls = 0; polls < dev->timeout_polls; ++polls) {
        uint32_t status = reg_read(dev, SNN_REG_STATUS);
        if (dev->fault) {
            return SNN_ERR_BUS;
        }
        if (SNN_FIELD_GET(status, SNN_STATUS_ERROR)) {
            dev->hw_error = SNN_FIELD_GET(status, SNN_STATUS_ERROR_CODE);
            return SNN_ERR_HARDWARE;
        }
        if (SNN_FIELD_GET(status, SNN_STATUS_DONE)) {
            return SNN_OK;
        }
    }
    return SNN_ERR_TIMEOUT;
}

snn_status_t snn_read_result(snn_dev_t *dev, uint32_t *class_out, int32_t *scores, size_t n_scores)
{
    uint32_t j;

    if (dev == NULL || (scores != NULL && n_scores < dev->n_classes)) {
        return SNN_ERR_ARG;
    }
    dev->fault = 0;
    if (class_out != NULL) {
        *class_out = reg_read(dev, SNN_REG_RESULT);
    }
    if (scores != NULL) {
        for (j = 0; j < dev->n_classes; ++j) {
            scores[j] = to_int32(reg_read(dev, SNN_REG_SCORE(j)));
        }
    }
    return settle(dev, SNN_OK);
}

snn_status_t snn_infer(snn_dev_t *dev, const uint8_t *pixels, size_t n_pixels, uint32_t *class_out,
                       int32_t *scores, size_t n_scores)
{
    snn_status_t status;

    if (dev == NULL || (scores != NULL && n_scores < dev->n_classes)) {
        return SNN_ERR_ARG;
    }
    status = snn_start(dev, pixels, n_pixels);
    if (status == SNN_OK) {
        status = snn_wait_done(dev);
    }
    if (status == SNN_OK) {
        status = snn_read_result(dev, class_out, scores, n_scores);
    }
    return status;
}

snn_status_t snn_read_counters(snn_dev_t *dev, snn_counters_t *out)
{
    uint32_t stage;

    if (dev == NULL || out == NULL) {
        return SNN_ERR_ARG;
    }
    dev->fault = 0;
    out->cycles = reg_read(dev, SNN_REG_CYCLES);
    out->images = reg_read(dev, SNN_REG_IMAGES);
    out->n_stages = dev->n_layers;
    for (stage = 0; stage < SNN_MAX_STAGES; ++stage) {
        out->spikes[stage] = stage < dev->n_layers ? reg_read(dev, SNN_REG_SPIKES(stage)) : 0u;
    }
    return settle(dev, SNN_OK);
}

/* ---- Weights ------------------------------------------------------------------------------- */

/* Where the chunk words come from: a word array, or little-endian bytes of any alignment. */
typedef struct {
    const uint32_t *words;
    const uint8_t *bytes;
} word_source_t;

static uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t source_word(const word_source_t *src, size_t index)
{
    return src->words != NULL ? src->words[index] : load_le32(src->bytes + 4u * index);
}

static snn_status_t load_memories(snn_dev_t *dev, uint32_t model_hash, uint32_t geometry, uint32_t chunks,
                                  uint32_t n_memories, const uint32_t *n_words, const word_source_t *src)
{
    size_t index = 0;
    uint32_t layer;
    snn_status_t status;

    if (!dev->weight_ram) {
        return SNN_ERR_NO_WEIGHT_RAM;
    }
    if (model_hash != SNN_BUILD_MODEL_HASH || geometry != SNN_BUILD_GEOMETRY || chunks != dev->weight_chunks ||
        n_memories != dev->weight_memories) {
        return SNN_ERR_WEIGHTS;
    }
    dev->fault = 0;
    status = require_idle(dev);
    if (status != SNN_OK) {
        return status;
    }
    for (layer = 0; layer < n_memories; ++layer) { /* WEIGHT_ADDR.LAYER: the memory's index */
        uint32_t word;
        uint32_t layer_field = SNN_FIELD_SET(SNN_WEIGHT_ADDR_LAYER, layer);
        reg_write(dev, SNN_REG_WEIGHT_ADDR, layer_field);
        for (word = 0; word < n_words[layer]; ++word) {
            uint32_t chunk = chunks;
            while (chunk-- > 0) { /* chunk 0 last: it commits the word */
                reg_write(dev, (uint32_t)SNN_REG_WEIGHT_DATA(chunk), source_word(src, index + chunk));
            }
            index += chunks;
        }
        /* WEIGHT_ADDR.ADDR counted every committed word. */
        if (reg_read(dev, SNN_REG_WEIGHT_ADDR) != (layer_field | SNN_FIELD_SET(SNN_WEIGHT_ADDR_ADDR, n_words[layer]))) {
            return settle(dev, SNN_ERR_WEIGHTS);
        }
        if (dev->fault) {
            return SNN_ERR_BUS;
        }
    }
    return settle(dev, require_idle(dev));
}

snn_status_t snn_load_weights(snn_dev_t *dev, const snn_weights_t *weights)
{
    word_source_t src;

    if (dev == NULL || weights == NULL || weights->data == NULL || weights->n_memories > SNN_MAX_WEIGHT_MEMORIES) {
        return SNN_ERR_ARG;
    }
    src.words = weights->data;
    src.bytes = NULL;
    return load_memories(dev, weights->model_hash, weights->geometry, weights->chunks, weights->n_memories,
                       weights->n_words, &src);
}

/* CRC-32 (IEEE 802.3, reflected, as zlib.crc32), bit by bit: no table in flash. */
static uint32_t crc32_bytes(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    while (n-- > 0) {
        int bit;
        crc ^= *p++;
        for (bit = 0; bit < 8; ++bit) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

#define BLOB_HEADER_BYTES 24u /* "SNNW", version, model hash, geometry, chunks, memories */
#define BLOB_VERSION 1u

snn_status_t snn_load_weights_blob(snn_dev_t *dev, const void *blob, size_t size)
{
    const uint8_t *b = (const uint8_t *)blob;
    uint32_t n_words[SNN_MAX_WEIGHT_MEMORIES];
    uint32_t chunks, n_memories, memory;
    size_t words = 0;
    word_source_t src;

    if (dev == NULL || blob == NULL) {
        return SNN_ERR_ARG;
    }
    if (size < BLOB_HEADER_BYTES + 8u || b[0] != 'S' || b[1] != 'N' || b[2] != 'N' || b[3] != 'W' ||
        load_le32(b + 4) != BLOB_VERSION) {
        return SNN_ERR_WEIGHTS;
    }
    chunks = load_le32(b + 16);
    n_memories = load_le32(b + 20);
    if (chunks == 0 || chunks > SNN_MAX_WEIGHT_CHUNKS || n_memories == 0 || n_memories > SNN_MAX_WEIGHT_MEMORIES ||
        size < BLOB_HEADER_BYTES + 4u * n_memories + 4u) {
        return SNN_ERR_WEIGHTS;
    }
    for (memory = 0; memory < n_memories; ++memory) {
        n_words[memory] = load_le32(b + BLOB_HEADER_BYTES + 4u * memory);
        if (n_words[memory] > SNN_WEIGHT_ADDR_ADDR_MASK) { /* more words than addresses */
            return SNN_ERR_WEIGHTS;
        }
        words += (size_t)n_words[memory] * chunks;
    }
    if (size != BLOB_HEADER_BYTES + 4u * n_memories + 4u * words + 4u ||
        crc32_bytes(b, size - 4u) != load_le32(b + size - 4u)) {
        return SNN_ERR_WEIGHTS;
    }
    src.words = NULL;
    src.bytes = b + BLOB_HEADER_BYTES + 4u * n_memories;
    return load_memories(dev, load_le32(b + 8), load_le32(b + 12), chunks, n_memories, n_words, &src);
}

/* ---- Errors -------------------------------------------------------------------------------- */

uint32_t snn_hw_error(const snn_dev_t *dev)
{
    return dev != NULL ? dev->hw_error : SNN_HW_ERROR_NONE;
}

const char *snn_strerror(snn_status_t status)
{
    switch (status) {
    case SNN_OK: return "ok";
    case SNN_ERR_ARG: return "invalid argument";
    case SNN_ERR_ID: return "no snnfpga accelerator at this address (ID mismatch)";
    case SNN_ERR_VERSION: return "register map or generator version mismatch";
    case SNN_ERR_MODEL: return "the bitstream holds another model (MODEL_HASH mismatch)";
    case SNN_ERR_SHAPE: return "network shape mismatch (SHAPE or LAYER_SIZE)";
    case SNN_ERR_GEOMETRY: return "hardware plan mismatch (GEOMETRY or WIDTHS)";
    case SNN_ERR_TIMEOUT: return "timed out waiting for the accelerator";
    case SNN_ERR_HARDWARE: return "the accelerator reported an error (STATUS.ERROR_CODE)";
    case SNN_ERR_BUSY: return "the accelerator is busy";
    case SNN_ERR_BUS: return "bus access failed";
    case SNN_ERR_NO_WEIGHT_RAM: return "weights are in ROM: nothing to load";
    case SNN_ERR_WEIGHTS: return "weight image malformed, for another model or plan, or not loaded";
    }
    return "unknown status";
}
