/* main.c: bare-metal example. Checks the accelerator, loads the weights when they live in
 * RAM, classifies one image and keeps the results in volatile globals for a debugger.
 *
 * Build: make (see Makefile); SNN_BASE_ADDR sets where the register block is mapped.
 * Weight storage ram: link the generated weights (snnfpga firmware MODEL --weights-c).
 */
#include "snn_driver.h"

#ifndef SNN_BASE_ADDR
#define SNN_BASE_ADDR 0x40000000u
#endif

#if SNN_BUILD_WEIGHT_RAM
extern const snn_weights_t snn_model_weights;
#endif

volatile int32_t snn_example_status;
volatile uint32_t snn_example_class;
volatile uint32_t snn_example_cycles;

static uint8_t image[SNN_BUILD_N_INPUTS];
static int32_t scores[SNN_BUILD_N_CLASSES];

static snn_status_t run(snn_dev_t *dev)
{
    snn_counters_t counters;
    uint32_t cls = 0;
    size_t k;
    snn_status_t status = snn_init(dev, (uintptr_t)SNN_BASE_ADDR, NULL);

    if (status != SNN_OK) {
        return status;
    }
#if SNN_BUILD_WEIGHT_RAM
    status = snn_load_weights(dev, &snn_model_weights);
    if (status != SNN_OK) {
        return status;
    }
#endif
    for (k = 0; k < SNN_BUILD_N_INPUTS; ++k) { /* a test pattern; a real system takes a camera frame */
        image[k] = (uint8_t)((k * 37u) & 0xFFu);
    }
    status = snn_infer(dev, image, SNN_BUILD_N_INPUTS, &cls, scores, SNN_BUILD_N_CLASSES);
    if (status != SNN_OK) {
        return status;
    }
    snn_example_class = cls;
    status = snn_read_counters(dev, &counters);
    snn_example_cycles = counters.cycles;
    return status;
}

int main(void)
{
    snn_dev_t dev;
    snn_example_status = (int32_t)run(&dev);
    return snn_example_status == SNN_OK ? 0 : 1;
}
