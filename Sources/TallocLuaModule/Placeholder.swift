public enum _ModulePlaceholder {}
