/* snn_driver.h: portable C11 driver of the snnfpga accelerator (Wishbone register block).
 *
 * The register map comes from the generated snn_regmap.h (snnfpga.firmware.codegen), whose
 * SNN_BUILD_* constants name the model and hardware plan this firmware was built for;
 * snn_init() refuses a device that reports anything else.
 *
 * Register access layer, in order of precedence:
 *   1. compile time: define SNN_REG_READ(dev, offset) and SNN_REG_WRITE(dev, offset, value)
 *      (for example in a header named by -DSNN_IO_HEADER="my_io.h");
 *   2. run time: pass an snn_bus_t (read/write function pointers) to snn_init();
 *   3. default: volatile 32-bit loads and stores at base + offset (memory-mapped I/O).
 * Define SNN_NO_BUS_HOOKS to compile out 2 (memory-mapped I/O only).
 *
 * Every function returns SNN_OK (0) or a negative snn_status_t; every busy-wait is bounded
 * by dev->timeout_polls status reads.
 */
#ifndef SNN_DRIVER_H
#define SNN_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "snn_regmap.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SNN_DRIVER_VERSION 1u
#define SNN_DEFAULT_TIMEOUT_POLLS 1000000u

typedef enum {
    SNN_OK = 0,
    SNN_ERR_ARG = -1,           /* a null pointer or a size that does not match the device */
    SNN_ERR_ID = -2,            /* ID is not SNN_ID_VALUE: no accelerator at this address */
    SNN_ERR_VERSION = -3,       /* VERSION differs from SNN_BUILD_VERSION */
    SNN_ERR_MODEL = -4,         /* MODEL_HASH differs: the bitstream holds another model */
    SNN_ERR_SHAPE = -5,         /* SHAPE or LAYER_SIZE differ from the build constants */
    SNN_ERR_GEOMETRY = -6,      /* GEOMETRY or WIDTHS differ (lanes, beat, weight storage) */
    SNN_ERR_TIMEOUT = -7,       /* a busy-wait ran out of polls */
    SNN_ERR_HARDWARE = -8,      /* STATUS.ERROR is set; see snn_hw_error() */
    SNN_ERR_BUSY = -9,          /* an image is in flight or the pixel buffer is streaming */
    SNN_ERR_BUS = -10,          /* a bus hook reported a failed access */
    SNN_ERR_NO_WEIGHT_RAM = -11, /* weights are in ROM: nothing to load */
    SNN_ERR_WEIGHTS = -12       /* weight image malformed or built for another model/plan */
} snn_status_t;

/* Run-time register access (option 2). Return 0 on success, non-zero on a failed access. */
typedef struct {
    int (*read)(void *ctx, uint32_t offset, uint32_t *value);
    int (*write)(void *ctx, uint32_t offset, uint32_t value);
    void *ctx;
} snn_bus_t;

/* One accelerator. Fill by snn_init(); timeout_polls may be changed afterwards. */
typedef struct {
    uintptr_t base;
    const snn_bus_t *bus;     /* NULL: memory-mapped I/O at base */
    uint32_t timeout_polls;   /* bound of every busy-wait, in status reads */
    uint32_t ctrl;            /* CTRL bits kept across writes (IRQ_ENABLE) */
    int fault;                /* set by a failed bus access */
    uint32_t hw_error;        /* STATUS.ERROR_CODE seen by the last SNN_ERR_HARDWARE */
    uint32_t n_inputs, n_classes, n_layers, weight_ram, weight_chunks, weight_memories;
} snn_dev_t;

typedef struct {
    uint32_t cycles;                  /* clock cycles of the last image */
    uint32_t images;                  /* results delivered since reset */
    uint32_t n_stages;                /* entries of spikes[] in use */
    uint32_t spikes[SNN_MAX_STAGES];  /* stage 0 = encoder, s = hidden layer s */
} snn_counters_t;

/* Weight words as a C array (generated: snnfpga firmware MODEL --weights-c). */
typedef struct {
    uint32_t model_hash;              /* MODEL_HASH the words belong to */
    uint32_t geometry;                /* GEOMETRY of the plan they were laid out for */
    uint32_t chunks;                  /* 32-bit chunks per word (WIDTHS.WEIGHT_CHUNKS) */
    uint32_t n_memories;              /* weight memories (WIDTHS.WEIGHT_MEMORIES) */
    uint32_t n_words[SNN_MAX_WEIGHT_MEMORIES]; /* words per memory */
    const uint32_t *data;             /* all memories, each word as chunks, chunk 0 first */
} snn_weights_t;

snn_status_t snn_init(snn_dev_t *dev, uintptr_t base, const snn_bus_t *bus);
snn_status_t snn_soft_reset(snn_dev_t *dev);
snn_status_t snn_clear(snn_dev_t *dev);
snn_status_t snn_set_irq(snn_dev_t *dev, int enable);

/* Blocking inference: pixels (n_pixels == SHAPE.N_INPUTS, row-major), START, wait for
 * STATUS.DONE, read the class and, when scores is not NULL, n_scores >= N_CLASSES scores. */
snn_status_t snn_infer(snn_dev_t *dev, const uint8_t *pixels, size_t n_pixels, uint32_t *class_out,
                       int32_t *scores, size_t n_scores);
/* The same in steps, for interrupt-driven firmware: start, then wait (or take the IRQ), read. */
snn_status_t snn_start(snn_dev_t *dev, const uint8_t *pixels, size_t n_pixels);
snn_status_t snn_wait_done(snn_dev_t *dev);
snn_status_t snn_read_result(snn_dev_t *dev, uint32_t *class_out, int32_t *scores, size_t n_scores);

snn_status_t snn_read_counters(snn_dev_t *dev, snn_counters_t *out);

/* Weight storage ram only: write every weight word (after reset, before the first image). */
snn_status_t snn_load_weights(snn_dev_t *dev, const snn_weights_t *weights);
/* The same from a weight blob (snnfpga firmware MODEL --weights-blob), any alignment. */
snn_status_t snn_load_weights_blob(snn_dev_t *dev, const void *blob, size_t size);

uint32_t snn_hw_error(const snn_dev_t *dev);
const char *snn_strerror(snn_status_t status);

#ifdef __cplusplus
}
#endif

#endif /* SNN_DRIVER_H */
