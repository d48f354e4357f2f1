"""The one composing function (run) and what it is given (job): source,
decrypt, decompress, payload and sinks, with the proof each layer gives."""
