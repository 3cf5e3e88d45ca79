"""RFID card readers (``hal.interfaces.CardReader``).  pyserial is imported only here (and in
``hal.modbus``)."""

from hal.cardreader.rdm6300 import CardReaderFailure, Rdm6300Parser, Rdm6300Reader

__all__ = ["CardReaderFailure", "Rdm6300Parser", "Rdm6300Reader"]
